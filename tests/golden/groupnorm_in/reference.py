#!/usr/bin/python3
"""Golden for examples/groupnorm.nn compiled with -D NORM=in: the ResNet of
tests/golden/groupnorm/reference.py (see there) with its norm layer set to "in".

    /usr/bin/python3 tests/golden/groupnorm_in/reference.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "groupnorm"))
import reference  # noqa: E402  (tests/golden/groupnorm/reference.py)

if __name__ == "__main__":
    reference.generate("in")
