"""The project's own exceptions, which the command line turns into one clear line."""


class CharRNNError(Exception):
    """An error whose message is meant for the person running charrnn.

    ``exit_code`` follows the command-line convention: 2 for bad usage or input,
    1 for a failure at run time.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class SettingError(CharRNNError, ValueError):
    """A setting (an argument, a flag, a configuration value) outside what it may be.

    A ``ValueError`` too, as scikit-learn and PyTorch raise for a bad argument.
    """


class DataError(CharRNNError, ValueError):
    """Data that cannot be used as given: texts and labels of different lengths, no texts, one
    class, a label type that is not a class, a malformed table.

    A ``ValueError`` too, as scikit-learn raises for invalid data.
    """
