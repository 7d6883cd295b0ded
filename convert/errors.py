"""The converter's exception: every input it refuses raises a ConvertError (or one of its
subclasses, ConfigError, SafetensorsError, TokenizerError), whose message names the file, key
or tensor. A ValueError, so callers catching ValueError keep working."""

from __future__ import annotations


class ConvertError(ValueError):
    """Any input the converter refuses; the message names the file, key or tensor."""
