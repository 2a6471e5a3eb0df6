"""What the bench smoke checks share: failures collected by check(), the driver run by run(),
and the summary line that sets the exit code."""
import subprocess

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def run(bench, args, routine=None):
    """Runs the driver (`bench ROUTINE args` when a routine is given), output captured."""
    command = [bench] + ([routine] if routine else []) + args
    return subprocess.run(command, capture_output=True, text=True, timeout=240)


def summary(title):
    for f in failures:
        print("FAIL:", f)
    print(title + ":", "FAILED" if failures else "ok")
    return 1 if failures else 0
