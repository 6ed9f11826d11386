"""Command-line entry point.

  python -m mmjax.main --config=configs/lightgcn.py --workdir=runs/x                    # train (or resume)
  python -m mmjax.main --config=configs/lightgcn.py --workdir=runs/x --mode=eval        # best checkpoint's metrics
  python -m mmjax.main --config=configs/lightgcn.py --workdir=runs/x --mode=recommend --users=0,5,7
"""

import logging
import os
import sys
import traceback

from absl import app, flags
from ml_collections import config_flags

from mmjax.compilation_cache import enable_compilation_cache
from mmjax.config_files import field_parent, flat_fields, load_config_file
from mmjax.errors import MmjaxError, describe_os_error
from mmjax.logs import log_to_workdir, quiet_platform_probe

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Model config file (a get_config() python file).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, results and plots.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "recommend"],
                  "train (resumes from the workdir's checkpoints), eval (recompute the best checkpoint's valid "
                  "and test metrics) or recommend (write recommendations.csv).")
flags.DEFINE_string("users", None, "recommend mode: comma-separated user ids, or a file of ids; default all users.")
flags.mark_flags_as_required(["config", "workdir"])


def quiet_background_failures() -> None:
    """Keeps Orbax's worker-thread noise off the terminal: a failed save (a full disk, say) surfaces in
    its threads as unraisable exceptions before its error reaches main(), which reports it in one line.
    Unraisable exceptions raised elsewhere are shown as usual."""
    default_hook = sys.unraisablehook
    background = (f"{os.sep}orbax{os.sep}", f"{os.sep}tensorstore{os.sep}", f"{os.sep}asyncio{os.sep}")

    def hook(unraisable) -> None:
        files = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(unraisable.exc_traceback)]
        code = getattr(unraisable.object, "cr_code", None)  # a coroutine of a cancelled write
        files += [code.co_filename] if code is not None else []
        if not any(part in name for name in files for part in background):
            default_hook(unraisable)

    sys.unraisablehook = hook


HELP_FLAGS = ("--help", "-h", "-help")
CONFIG_PREFIX = "--config."


def flag_value(argv: list[str], name: str) -> str | None:
    """The value of `--name=V` or `--name V` in argv (the last one given), or None."""
    value = None
    for i, arg in enumerate(argv):
        if arg.startswith(f"{name}="):
            value = arg.split("=", 1)[1]
        elif arg == name and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def config_help(path: str | None) -> str:
    """The fields a --config.FIELD=VALUE flag may set, with the config file's values."""
    if path is None:
        return "Config fields: give --config=FILE with --help to list that config's fields."
    fields = flat_fields(load_config_file(path))
    width = max(len(name) for name in fields)
    lines = [f"Config fields of {path} (set any with --config.FIELD=VALUE):"]
    lines += [f"  --config.{name.ljust(width)}  {value!r}" for name, value in fields.items()]
    return "\n".join(lines)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, keeping the CLI's promise for mistakes in the command line: a missing config
    file, an unknown --config.FIELD (with the nearest known name), a value that does not parse or a
    missing flag are one line and exit 2. --help also lists the config's fields."""
    path = flag_value(argv, "--config")
    try:
        if any(arg in HELP_FLAGS for arg in argv[1:]):
            print(FLAGS.main_module_help() + "\n\n" + config_help(path))
            sys.exit(0)
        names = [arg[len(CONFIG_PREFIX):].split("=", 1)[0] for arg in argv[1:] if arg.startswith(CONFIG_PREFIX)]
        if path is not None:
            config = load_config_file(path)
            for name in names:
                field_parent(config, name, what=CONFIG_PREFIX)
        return FLAGS(argv)
    except MmjaxError as error:
        fail(f"--config: {error}" if path is not None and str(error).startswith(path) else str(error), 2)
    except flags.Error as error:
        fail(" ".join(str(error).split()), 2)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    quiet_background_failures()
    quiet_platform_probe()
    enable_compilation_cache()
    log_to_workdir(FLAGS.workdir)
    from mmjax.train import train  # imported late: jax starts after flag parsing

    try:
        if FLAGS.mode == "train":
            train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
        elif FLAGS.mode == "eval":
            train.evaluate_best(FLAGS.config, FLAGS.workdir)
        else:
            train.recommend(FLAGS.config, FLAGS.workdir, train.parse_users(FLAGS.users))
    except MmjaxError as error:
        fail(str(error), 2)
    except FloatingPointError as error:
        fail(str(error), 1)
    except Exception as error:  # noqa: BLE001 - file-system failures arrive wrapped by Orbax and tensorstore
        failure = describe_os_error(error, FLAGS.workdir)
        if failure is None:
            raise
        fail(*failure)


def fail(message: str, status: int) -> None:
    """The one-line error the CLI promises, and its exit status (2: bad input)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
