// Generated with Python's re: [(m.group(), m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]
// (the server's splitter, shapeworld.grammar.caption_words). Offsets are Python string indices.
export const PYTHON_SPLITS = [
  {"text": "A red square left of a blue circle.", "words": [["A", 0, 1], ["red", 2, 5], ["square", 6, 12], ["left", 13, 17], ["of", 18, 20], ["a", 21, 22], ["blue", 23, 27], ["circle", 28, 34], [".", 34, 35]]},
  {"text": "  two  small   triangles,and one\tbig star!  ", "words": [["two", 2, 5], ["small", 7, 12], ["triangles", 15, 24], [",", 24, 25], ["and", 25, 28], ["one", 29, 32], ["big", 33, 36], ["star", 37, 41], ["!", 41, 42]]},
  {"text": "it's a \"quoted\" word; really?!", "words": [["it", 0, 2], ["'", 2, 3], ["s", 3, 4], ["a", 5, 6], ["\"", 7, 8], ["quoted", 8, 14], ["\"", 14, 15], ["word", 16, 20], [";", 20, 21], ["really", 22, 28], ["?", 28, 29], ["!", 29, 30]]},
  {"text": "na\u00efve caf\u00e9 \u2014 d\u00e9j\u00e0 vu", "words": [["na\u00efve", 0, 5], ["caf\u00e9", 6, 10], ["\u2014", 11, 12], ["d\u00e9j\u00e0", 13, 17], ["vu", 18, 20]]},
  {"text": "e\u0301cole", "words": [["e", 0, 1], ["\u0301", 1, 2], ["cole", 2, 6]]},
  {"text": "emoji \ud83d\ude42 then word, \ud83d\udc08\u200d\u2b1bcat", "words": [["emoji", 0, 5], ["\ud83d\ude42", 6, 7], ["then", 8, 12], ["word", 13, 17], [",", 17, 18], ["\ud83d\udc08", 19, 20], ["\u200d", 20, 21], ["\u2b1b", 21, 22], ["cat", 22, 25]]},
  {"text": "snake_case x2 3.5kg 42", "words": [["snake_case", 0, 10], ["x2", 11, 13], ["3", 14, 15], [".", 15, 16], ["5kg", 16, 19], ["42", 20, 22]]},
  {"text": "\u4e2d\u6587\u5b57\u7b26 and \u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8\u3002", "words": [["\u4e2d\u6587\u5b57\u7b26", 0, 4], ["and", 5, 8], ["\u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8", 9, 16], ["\u3002", 16, 17]]},
  {"text": "tab\there\nnewline\u00a0nbsp\u2003emsp", "words": [["tab", 0, 3], ["here", 4, 8], ["newline", 9, 16], ["nbsp", 17, 21], ["emsp", 22, 26]]},
  {"text": "sep\u001cfs\u001dgs\u0085nel\ufeffbom", "words": [["sep", 0, 3], ["fs", 4, 6], ["gs", 7, 9], ["nel", 10, 13], ["\ufeff", 13, 14], ["bom", 14, 17]]},
  {"text": "\u216b roman \u00b2 sup \u00bd half", "words": [["\u216b", 0, 1], ["roman", 2, 7], ["\u00b2", 8, 9], ["sup", 10, 13], ["\u00bd", 14, 15], ["half", 16, 20]]},
  {"text": "", "words": []},
  {"text": "   ", "words": []},
  {"text": "...!!", "words": [[".", 0, 1], [".", 1, 2], [".", 2, 3], ["!", 3, 4], ["!", 4, 5]]},
  {"text": "\ud835\udd18\ud835\udd2b\ud835\udd26\ud835\udd20\ud835\udd2c\ud835\udd21\ud835\udd22 math letters", "words": [["\ud835\udd18\ud835\udd2b\ud835\udd26\ud835\udd20\ud835\udd2c\ud835\udd21\ud835\udd22", 0, 7], ["math", 8, 12], ["letters", 13, 20]]},
];
