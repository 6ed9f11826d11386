"""Command-line entry point.

  python -m mmjax.main --config=configs/lightgcn.py --workdir=runs/x                    # train (or resume)
  python -m mmjax.main --config=configs/lightgcn.py --workdir=runs/x --mode=eval        # best checkpoint's metrics
  python -m mmjax.main --config=configs/lightgcn.py --workdir=runs/x --mode=recommend --users=0,5,7
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mmjax.errors import MmjaxError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Model config file (a get_config() python file).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, results and plots.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "recommend"],
                  "train (resumes from the workdir's checkpoints), eval (recompute the best checkpoint's valid "
                  "and test metrics) or recommend (write recommendations.csv).")
flags.DEFINE_string("users", None, "recommend mode: comma-separated user ids, or a file of ids; default all users.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from mmjax.train import train  # imported late: jax starts after flag parsing

    try:
        if FLAGS.mode == "train":
            train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
        elif FLAGS.mode == "eval":
            train.evaluate_best(FLAGS.config, FLAGS.workdir)
        else:
            train.recommend(FLAGS.config, FLAGS.workdir, train.parse_users(FLAGS.users))
    except MmjaxError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as error:
        logging.error("%s", error)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
