"""Command-line entry point: python -m mmjax.main --config=configs/lightgcn.py --workdir=runs/x"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mmjax.errors import MmjaxError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Model config file (a get_config() python file).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for metrics, results and plots.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from mmjax.train.train import train_and_evaluate  # imported late: jax starts after flag parsing

    try:
        train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except MmjaxError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as error:
        logging.error("%s", error)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
