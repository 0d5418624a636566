// The caption as an editable list of words with history. Pure functions on plain objects: every
// operation returns a new state and leaves its argument untouched, so the page can keep the state
// in sessionStorage as JSON and a test can check each step.
//
// A word is the server's unit (`\w+|[^\w\s]`, punctuation a word of its own): labels, detections
// and corrections all refer to these spans, so the splitter below must agree with Python's `re`.

// Python's `\w` on str is "alphanumeric or underscore" (Unicode categories L* and N*), and its
// `\s` differs from JavaScript's: it includes U+001C–U+001F and U+0085 and excludes U+FEFF.
const PY_SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_WORD_CHAR = "\\p{L}\\p{N}_";
const WORD = new RegExp(`[${PY_WORD_CHAR}]+|[^${PY_WORD_CHAR}${PY_SPACE}]`, "gu");

// No space is written before these when words are joined back into text.
const CLOSING_PUNCTUATION = new Set([".", ",", ";", ":", "!", "?"]);

/**
 * Words of a caption with their offsets, exactly like the server's splitter: offsets count code
 * points (Python's string indices), not UTF-16 units, so an emoji before a word does not shift it.
 * @param {string} text
 * @returns {{text: string, start: number, end: number}[]}
 */
export function captionWords(text) {
  const words = [];
  let unit = 0; // UTF-16 index reached so far
  let point = 0; // the same position in code points
  for (const match of text.matchAll(WORD)) {
    point += codePointCount(text, unit, match.index);
    const length = codePointCount(match[0], 0, match[0].length);
    words.push({ text: match[0], start: point, end: point + length });
    unit = match.index + match[0].length;
    point += length;
  }
  return words;
}

function codePointCount(text, from, to) {
  let count = 0;
  for (let i = from; i < to; i++) {
    const code = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < to) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

/**
 * The editing state of one caption.
 * `source`: the caption as served ({text, words: [{text, start, end, p_bad}]}).
 * `words`: the current words; `origin` is the index of the source word it still is, or null for
 * a word the annotator typed. `past`/`future`: undo and redo stacks of earlier word lists, each
 * with the index the change happened at (`at`), so undo can put the selection back there.
 * @param {{text: string, words?: {text: string, start: number, end: number, p_bad?: number|null}[]}} caption
 */
export function editStart(caption) {
  const sourceWords = (caption.words && caption.words.length ? caption.words : captionWords(caption.text)).map(
    (word) => ({ text: word.text, start: word.start, end: word.end, p_bad: word.p_bad ?? null }),
  );
  return {
    source: { text: caption.text, words: sourceWords },
    words: sourceWords.map((word, index) => ({ key: index, text: word.text, origin: index })),
    nextKey: sourceWords.length,
    past: [],
    future: [],
    at: 0,
  };
}

function withChange(state, words, nextKey, at) {
  return {
    ...state,
    words,
    nextKey,
    past: [...state.past, { words: state.words, at }],
    future: [],
    at,
  };
}

function typedWords(state, text) {
  const words = captionWords(text).map((word, offset) => ({ key: state.nextKey + offset, text: word.text, origin: null }));
  return { words, nextKey: state.nextKey + words.length };
}

/**
 * Replace the word at `index` with what the annotator typed; typing several words ("dark red")
 * gives several words, typing nothing deletes it, typing the same text changes nothing.
 */
export function wordReplace(state, index, text) {
  checkIndex(state, index);
  if (text.trim() === state.words[index].text) return state;
  const typed = typedWords(state, text);
  const words = [...state.words.slice(0, index), ...typed.words, ...state.words.slice(index + 1)];
  return withChange(state, words, typed.nextKey, Math.min(index, Math.max(words.length - 1, 0)));
}

/** Delete the word at `index`. */
export function wordDelete(state, index) {
  checkIndex(state, index);
  const words = [...state.words.slice(0, index), ...state.words.slice(index + 1)];
  return withChange(state, words, state.nextKey, Math.min(index, Math.max(words.length - 1, 0)));
}

/**
 * Insert what the annotator typed before position `index` (0 = first, words.length = at the end).
 * Typing nothing changes nothing.
 */
export function wordInsert(state, index, text) {
  if (!Number.isInteger(index) || index < 0 || index > state.words.length) {
    throw new RangeError(`no insert position ${index} in a caption of ${state.words.length} words`);
  }
  const typed = typedWords(state, text);
  if (typed.words.length === 0) return state;
  const words = [...state.words.slice(0, index), ...typed.words, ...state.words.slice(index)];
  return withChange(state, words, typed.nextKey, index);
}

/**
 * Replace the whole caption with free text (a large rewrite); the same text changes nothing.
 * Words the rewrite kept (a longest common subsequence with the current words) stay the words
 * they were, so their scores, highlights and original spacing survive the rewrite.
 */
export function captionRewrite(state, text) {
  if (text.trim() === captionRender(state).trim()) return state;
  const typed = typedWords(state, text);
  const kept = commonWords(
    state.words.map((word) => word.text),
    typed.words.map((word) => word.text),
  );
  const words = typed.words.map((word, index) => (kept.has(index) ? state.words[kept.get(index)] : word));
  return withChange(state, words, typed.nextKey, 0);
}

/** Map from an index of `after` to the index of `before` it is, along a longest common subsequence. */
function commonWords(before, after) {
  // lengths[i][j]: LCS length of before[i:] and after[j:]
  const lengths = Array.from({ length: before.length + 1 }, () => new Array(after.length + 1).fill(0));
  for (let i = before.length - 1; i >= 0; i--) {
    for (let j = after.length - 1; j >= 0; j--) {
      lengths[i][j] = before[i] === after[j] ? lengths[i + 1][j + 1] + 1 : Math.max(lengths[i + 1][j], lengths[i][j + 1]);
    }
  }
  const kept = new Map();
  for (let i = 0, j = 0; i < before.length && j < after.length; ) {
    if (before[i] === after[j]) kept.set(j++, i++);
    else if (lengths[i + 1][j] >= lengths[i][j + 1]) i++;
    else j++;
  }
  return kept;
}

export function canUndo(state) {
  return state.past.length > 0;
}

export function canRedo(state) {
  return state.future.length > 0;
}

export function undo(state) {
  if (!canUndo(state)) return state;
  const previous = state.past[state.past.length - 1];
  return {
    ...state,
    words: previous.words,
    past: state.past.slice(0, -1),
    future: [...state.future, { words: state.words, at: previous.at }],
    at: clampIndex(previous.at, previous.words.length),
  };
}

export function redo(state) {
  if (!canRedo(state)) return state;
  const next = state.future[state.future.length - 1];
  return {
    ...state,
    words: next.words,
    past: [...state.past, { words: state.words, at: next.at }],
    future: state.future.slice(0, -1),
    at: clampIndex(next.at, next.words.length),
  };
}

/** Whether the current words differ from the caption as served. */
export function isChanged(state) {
  const { words, source } = state;
  return words.length !== source.words.length || words.some((word, index) => word.origin !== index);
}

/** p_bad of the word at `index`: the detector's score for an untouched source word, else null. */
export function wordPBad(state, index) {
  const word = state.words[index];
  return word && word.origin !== null ? state.source.words[word.origin].p_bad : null;
}

/**
 * Words joined back into text. Between two source words that are still neighbours the original
 * separator is kept ("it's" stays "it's", an unchanged caption renders to its own text); elsewhere
 * words are joined by one space, with no space before . , ; : ! ?
 * @param {{source: {text: string, words: {start: number, end: number}[]}, words: {text: string, origin: number|null}[]}} state
 */
export function captionRender(state) {
  const points = Array.from(state.source.text);
  let text = "";
  state.words.forEach((word, index) => {
    if (index > 0) {
      const previous = state.words[index - 1];
      if (previous.origin !== null && word.origin === previous.origin + 1) {
        const gap = points.slice(state.source.words[previous.origin].end, state.source.words[word.origin].start).join("");
        text += /\S/u.test(gap) ? " " : gap; // a gap with text in it never survives as-is
      } else if (!CLOSING_PUNCTUATION.has(word.text)) {
        text += " ";
      }
    }
    text += word.text;
  });
  return text;
}

function checkIndex(state, index) {
  if (!Number.isInteger(index) || index < 0 || index >= state.words.length) {
    throw new RangeError(`no word ${index} in a caption of ${state.words.length} words`);
  }
}

function clampIndex(index, length) {
  return Math.max(0, Math.min(index, length - 1));
}
