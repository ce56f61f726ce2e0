"""The handler of the consumer's fault tests (t/lib/WebhookConsumer.pm):
what it does with an envelope is named by the envelope's "model":

    ok (or anything else)   returns
    sleep:S                 sleeps S seconds, then returns
    forever                 sleeps for ever (interruptible)
    stubborn                sleeps for ever and swallows every exception
    fail                    raises RuntimeError
    raise:NAME              raises KeyboardInterrupt, SystemExit (also
                            SystemExit0, SystemExit1), GeneratorExit or
                            CancelledError (asyncio's)
    digits                  returns; notes the type and the number of
                            digits of payload "n"

Each call appends JSON lines to $CONSUMER_TEST_OUT: {"id", "pid", "phase":
"start"} when it starts and {..., "phase": "done"} when it returns without
an exception.
"""

import asyncio
import json
import os
import time


def _note(env, phase, **more):
    line = dict(id=env.get("id"), pid=os.getpid(), phase=phase, **more)
    with open(os.environ["CONSUMER_TEST_OUT"], "a") as f:
        f.write(json.dumps(line) + "\n")


RAISES = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": SystemExit,
    "SystemExit0": lambda: SystemExit(0),
    "SystemExit1": lambda: SystemExit(1),
    "GeneratorExit": GeneratorExit,
    "CancelledError": asyncio.CancelledError,
}


def handle(env):
    model = env.get("model") or "ok"
    _note(env, "start")
    if model.startswith("sleep:"):
        time.sleep(float(model[6:]))
    elif model == "forever":
        time.sleep(1e9)
    elif model == "stubborn":
        while True:
            try:
                time.sleep(1e9)
            except BaseException:
                pass
    elif model == "fail":
        raise RuntimeError("failing on purpose")
    elif model.startswith("raise:"):
        raise RAISES[model[6:]]()
    elif model == "digits":
        n = env.get("payload", {}).get("n")
        _note(env, "digits", type=type(n).__name__,
              digits=len(str(n).lstrip("-")) if type(n).__name__ == "Decimal"
              else None)
    _note(env, "done")
