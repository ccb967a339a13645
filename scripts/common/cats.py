"""What a category value means, for every stage: one threshold and one name for a negated label."""

POSITIVE = 0.5  # a category value at or above this counts as positive
NEGATION_PREFIX = (
    "NOT_"  # data with one category gets NOT_<LABEL> = 1 - value (exclusive, 2 labels)
)
