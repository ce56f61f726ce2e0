
/*
 * What the libFuzzer harnesses of t/fuzz/ share: a check that stops the
 * run (abort(), which libFuzzer reports with the input) and names what
 * broke, in which harness and on which line.
 */


#ifndef _FUZZ_H_INCLUDED_
#define _FUZZ_H_INCLUDED_


#include <stdio.h>
#include <stdlib.h>


#define fuzz_check(cond, what)                                               \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s: broken: %s (line %d)\n", __FILE__, what,    \
                    __LINE__);                                               \
            abort();                                                         \
        }                                                                    \
    } while (0)


#endif /* _FUZZ_H_INCLUDED_ */
