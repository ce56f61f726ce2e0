
/*
 * The TAP output of the C unit tests: ok(cond, name), and the counts main()
 * prints the plan from.
 */


#ifndef _WEBHOOK_TAP_H_INCLUDED_
#define _WEBHOOK_TAP_H_INCLUDED_


#include <stdio.h>


static int  tests, failed;


#define ok(cond, name)                                                       \
    do {                                                                     \
        tests++;                                                             \
        if (cond) {                                                          \
            printf("ok %d - %s\n", tests, name);                             \
        } else {                                                             \
            failed++;                                                        \
            printf("not ok %d - %s (line %d)\n", tests, name, __LINE__);     \
        }                                                                    \
    } while (0)


#endif /* _WEBHOOK_TAP_H_INCLUDED_ */
