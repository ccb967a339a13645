"""Every use of spaCy's non-public API in this project, in one place, each with the reason.

tests/test_spacy_internals.py fails the day spaCy changes any of them.
"""

# spaCy's own parser for `--section.key value` overrides lives in a private module; importing it keeps
# the override syntax of our commands exactly spaCy's (values parsed as JSON, else strings).
from spacy.cli._util import parse_config_overrides

__all__ = ["parse_config_overrides"]
