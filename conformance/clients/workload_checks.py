"""What the Python client workloads share: `ok NAME` / `FAIL NAME detail` lines, one per check,
and the exit status they end with (non-zero when any check failed)."""
import sys

failures = 0


def check(name, cond, detail=""):
    global failures
    if cond:
        print("ok %s" % name)
    else:
        failures += 1
        print("FAIL %s %s" % (name, detail))
    sys.stdout.flush()


def guarded(name, fn):
    """Runs one scenario; any client exception is that scenario's failure, not the workload's end."""
    global failures
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report any client exception as this check's failure
        failures += 1
        print("FAIL %s exception %s: %s" % (name, type(e).__name__, e))
        sys.stdout.flush()


def finish():
    sys.exit(1 if failures else 0)
