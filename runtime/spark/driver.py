"""The Python file a SparkApplication runs (`mainApplicationFile`): the mlc runtime's CLI,
`step <kind> ...` or `batch ...`, in a driver that spark-submit started, whose master and
configuration the Spark operator set (`session` then leaves them alone)."""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    os.environ["MLC_SPARK_SUBMITTED"] = "1"
    if argv and argv[0] == "batch":
        # The mlc CLI in this process: it inherits spark-submit's gateway (PYSPARK_GATEWAY_*),
        # so its SparkSession is this driver's.
        os.execvp("mlc", ["mlc", *argv])
    from mlc.runtime.__main__ import main as runtime

    return runtime(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
