"""User-facing errors: each carries a message a researcher can act on, printed without a traceback."""


class EosbenchError(Exception):
    """An error caused by input or environment, reported to the user as one paragraph."""


class SpecError(EosbenchError):
    """A task file or suite definition is malformed."""


class UnknownNameError(EosbenchError):
    """A task, suite or predictor name does not exist; the message lists what does."""


class DataUnavailableError(EosbenchError):
    """A data set needs files that are not on this machine (e.g. CIFAR-10)."""


class BackendUnavailableError(EosbenchError):
    """A backend or device was asked for that this machine cannot provide."""


def unknown_name(kind: str, name: str, available: list[str], shown: list[str] | None = None) -> UnknownNameError:
    """Build the standard "Unknown x 'y'. Did you mean ...? Available: ..." error; the suggestions come from
    ``available``, the listing from ``shown`` when given (a shorter summary of the same names)."""
    import difflib

    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(shown if shown is not None else sorted(available)) if available else "(none)"
    return UnknownNameError(f"Unknown {kind} {name!r}.{hint} Available: {listing}.")


class PluginComponentError(EosbenchError):
    """A model or data recipe from an installed package could not be loaded or built."""
