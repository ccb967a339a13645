"""From annotation files to .spacy DocBins: decoding text files, readers (one module per family of
formats), segmenting long documents, merging, splitting and the conversion report."""
