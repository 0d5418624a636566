"""Words of a caption: the unit every label, detection and correction refers to.

One splitter for the whole project (`\\w+|[^\\w\\s]`, punctuation a word of its own), defined with
the built-in world's grammar and re-exported here for captions of any source. This module loads
no torch, so the web app can label corrections without the model stack in every process.
"""

from shapeworld.grammar import caption_words as response_words

__all__ = ["response_words"]
