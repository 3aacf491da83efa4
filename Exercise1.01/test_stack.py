"""Exercise 1.01 from a terminal: check the software stack and print one PASS/FAIL line per part.

    python test_stack.py      (exit status 1 when something required is missing)
    tensorboard --help        (the lesson's second step: TensorBoard's command-line options)
"""
import sys

from tflab import stack

if __name__ == "__main__":
    sys.exit(stack.main())
