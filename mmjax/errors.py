"""User-facing errors: the CLI prints these in one line and exits with status 2."""


class MmjaxError(ValueError):
    """Base class for errors caused by the user's input, not by a bug."""


class DataError(MmjaxError):
    """A dataset file or array does not meet the expected format."""


class ConfigError(MmjaxError):
    """A config value is missing or outside its allowed range."""


def check_fields(checks, prefix: str = "") -> None:
    """ConfigError for the first failed (field, value, ok, expectation) check: '<prefix><field>: expected ...'."""
    for name, value, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{prefix}{name}: expected {expected}, got {value!r}")
