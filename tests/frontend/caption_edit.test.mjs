// The caption editing model of the annotation page. Run: node --test tests/frontend/
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  canRedo,
  canUndo,
  captionRender,
  captionRewrite,
  captionWords,
  editStart,
  isChanged,
  redo,
  undo,
  wordDelete,
  wordInsert,
  wordPBad,
  wordReplace,
} from "../../static/annotator/caption_edit.js";
import { PYTHON_SPLITS } from "./python_splits.mjs";

const texts = (state) => state.words.map((word) => word.text);

function served(text, pBad = {}) {
  return { text, words: captionWords(text).map((word) => ({ ...word, p_bad: pBad[word.text] ?? null })) };
}

describe("captionWords splits like the server", () => {
  for (const { text, words } of PYTHON_SPLITS) {
    test(`same words and offsets as Python for ${JSON.stringify(text)}`, () => {
      assert.deepEqual(
        captionWords(text).map((word) => [word.text, word.start, word.end]),
        words,
      );
    });
  }

  test("offsets count code points, so they index Python strings past an emoji", () => {
    const text = "🙂 red";
    const [, red] = captionWords(text);
    assert.deepEqual(red, { text: "red", start: 2, end: 5 });
    assert.equal(Array.from(text).slice(red.start, red.end).join(""), "red");
  });

  test("the splitter keeps no state between calls", () => {
    assert.deepEqual(captionWords("a b"), captionWords("a b"));
  });
});

describe("editStart", () => {
  test("takes the served words with their scores", () => {
    const state = editStart(served("a red square.", { red: 0.9 }));
    assert.deepEqual(texts(state), ["a", "red", "square", "."]);
    assert.equal(wordPBad(state, 1), 0.9);
    assert.equal(wordPBad(state, 0), null);
    assert.equal(isChanged(state), false);
  });

  test("splits the text itself when no words are served", () => {
    assert.deepEqual(texts(editStart({ text: "two blue stars" })), ["two", "blue", "stars"]);
  });

  test("an unchanged caption renders to its own text", () => {
    for (const text of ["A red square left of a blue circle.", "it's a \"quoted\" word; really?!", "emoji 🙂 then word, cat"]) {
      assert.equal(captionRender(editStart(served(text))), text);
    }
  });
});

describe("edit operations", () => {
  const start = () => editStart(served("a red square left of a circle.", { red: 0.8, left: 0.6 }));

  test("replace a word", () => {
    const state = wordReplace(start(), 1, "green");
    assert.deepEqual(texts(state), ["a", "green", "square", "left", "of", "a", "circle", "."]);
    assert.equal(captionRender(state), "a green square left of a circle.");
    assert.equal(wordPBad(state, 1), null, "a typed word has no detector score");
    assert.equal(isChanged(state), true);
    assert.equal(state.at, 1);
  });

  test("replace one word with several", () => {
    const state = wordReplace(start(), 1, " dark  green ");
    assert.deepEqual(texts(state).slice(0, 4), ["a", "dark", "green", "square"]);
    assert.equal(captionRender(state), "a dark green square left of a circle.");
  });

  test("replacing a word with nothing deletes it", () => {
    assert.equal(captionRender(wordReplace(start(), 1, "  ")), "a square left of a circle.");
  });

  test("replacing a word with itself changes nothing and adds no history", () => {
    const before = start();
    const after = wordReplace(before, 1, "red ");
    assert.equal(after, before);
    assert.equal(canUndo(after), false);
  });

  test("delete a word", () => {
    const state = wordDelete(start(), 3);
    assert.equal(captionRender(state), "a red square of a circle.");
    assert.equal(state.at, 3);
  });

  test("deleting the last word selects the new last word", () => {
    const before = start();
    const state = wordDelete(before, before.words.length - 1);
    assert.equal(captionRender(state), "a red square left of a circle");
    assert.equal(state.at, state.words.length - 1);
  });

  test("insert before, after and at the end", () => {
    assert.equal(captionRender(wordInsert(start(), 2, "big")), "a red big square left of a circle.");
    assert.equal(captionRender(wordInsert(start(), 0, "Here is")), "Here is a red square left of a circle.");
    const end = start();
    assert.equal(captionRender(wordInsert(end, end.words.length, "!")), "a red square left of a circle.!");
  });

  test("inserting nothing changes nothing", () => {
    const before = start();
    assert.equal(wordInsert(before, 1, "   "), before);
  });

  test("rewrite the whole caption", () => {
    const state = captionRewrite(start(), "Two  blue circles , nothing else");
    assert.deepEqual(texts(state), ["Two", "blue", "circles", ",", "nothing", "else"]);
    assert.equal(captionRender(state), "Two blue circles, nothing else");
    assert.equal(isChanged(state), true);
  });

  test("a rewrite keeps the words it did not touch, with their scores and spacing", () => {
    const state = captionRewrite(start(), "a red square left of a circle. More");
    assert.equal(wordPBad(state, 1), 0.8, "'red' is still the detector's word");
    assert.equal(isChanged(state), true);
    assert.deepEqual(
      state.words.map((word) => word.origin),
      [0, 1, 2, 3, 4, 5, 6, 7, null],
    );
    assert.equal(captionRender(state), "a red square left of a circle. More");
    const reordered = captionRewrite(start(), "a circle left of a red square.");
    assert.equal(captionRender(reordered), "a circle left of a red square.");
    assert.equal(captionRender(undo(reordered)), "a red square left of a circle.");
  });

  test("rewriting to the same text changes nothing", () => {
    const before = start();
    assert.equal(captionRewrite(before, "a red square left of a circle.  "), before);
  });

  test("operations never modify their argument", () => {
    const before = start();
    const copy = JSON.parse(JSON.stringify(before));
    wordReplace(before, 1, "green");
    wordDelete(before, 0);
    wordInsert(before, 0, "x");
    captionRewrite(before, "other");
    undo(wordDelete(before, 0));
    assert.deepEqual(before, copy);
  });

  test("an index outside the caption is an error that names it", () => {
    assert.throws(() => wordDelete(start(), 99), /no word 99 in a caption of 8 words/);
    assert.throws(() => wordReplace(start(), -1, "x"), RangeError);
    assert.throws(() => wordInsert(start(), 9, "x"), /no insert position 9/);
  });

  test("the state survives JSON (the page keeps drafts in sessionStorage)", () => {
    const state = wordDelete(wordReplace(start(), 1, "green"), 0);
    const restored = JSON.parse(JSON.stringify(state));
    assert.equal(captionRender(restored), captionRender(state));
    assert.equal(captionRender(undo(undo(restored))), "a red square left of a circle.");
  });
});

describe("undo and redo", () => {
  const start = () => editStart(served("one red star."));

  test("undo walks back every change and redo replays them", () => {
    const s0 = start();
    const s1 = wordReplace(s0, 1, "blue");
    const s2 = wordDelete(s1, 0);
    const s3 = wordInsert(s2, 0, "a");
    assert.equal(captionRender(s3), "a blue star.");
    const u1 = undo(s3);
    assert.equal(captionRender(u1), "blue star.");
    const u2 = undo(u1);
    assert.equal(captionRender(u2), "one blue star.");
    const u3 = undo(u2);
    assert.equal(captionRender(u3), "one red star.");
    assert.equal(isChanged(u3), false);
    assert.equal(canUndo(u3), false);
    assert.equal(undo(u3), u3, "nothing left to undo");
    const r = redo(redo(redo(u3)));
    assert.equal(captionRender(r), "a blue star.");
    assert.equal(canRedo(r), false);
    assert.equal(redo(r), r, "nothing left to redo");
  });

  test("undo puts the selection back where the change was", () => {
    const state = wordDelete(wordDelete(start(), 2), 0);
    assert.equal(undo(state).at, 0);
    assert.equal(undo(undo(state)).at, 2);
    assert.equal(redo(undo(undo(state))).at, 2);
  });

  test("a new change after undo drops the redo stack", () => {
    const state = wordInsert(undo(wordDelete(start(), 1)), 0, "just");
    assert.equal(canRedo(state), false);
    assert.equal(captionRender(state), "just one red star.");
  });

  test("undo restores untouched words with their original spacing and scores", () => {
    const original = editStart(served("it's red.", { red: 0.7 }));
    const state = undo(wordReplace(original, 3, "blue"));
    assert.equal(captionRender(state), "it's red.");
    assert.equal(wordPBad(state, 3), 0.7);
    assert.equal(isChanged(state), false);
  });
});

describe("captionRender", () => {
  const render = (words) =>
    captionRender({ source: { text: "", words: [] }, words: words.map((text) => ({ text, origin: null })) });

  test("joins typed words with single spaces and no space before . , ; : ! ?", () => {
    assert.equal(render(["a", "star", ",", "a", "moon", ";", "wow", "!", "why", "?", "so", ":", "end", "."]), "a star, a moon; wow! why? so: end.");
  });

  test("other punctuation is spaced like a word", () => {
    assert.equal(render(["a", "(", "b", ")", "-", "c"]), "a ( b ) - c");
  });

  test("keeps the original gap only between words that are still neighbours", () => {
    const state = editStart(served("it's  a star , really"));
    assert.equal(captionRender(state), "it's  a star , really", "untouched: the text as served");
    assert.equal(captionRender(wordDelete(state, 3)), "it's star , really");
    assert.equal(captionRender(wordReplace(state, 0, "that")), "that 's  a star , really");
  });

  test("an empty caption renders to nothing", () => {
    assert.equal(captionRender(editStart(served(""))), "");
    const one = editStart(served("x"));
    assert.equal(captionRender(wordDelete(one, 0)), "");
  });
});
