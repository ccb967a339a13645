"""From annotation files to .spacy DocBins: readers (one module per family of formats), segmenting
long documents, merging, splitting and the conversion report."""
