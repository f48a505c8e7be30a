#!/usr/bin/python3
"""Reference token ids from SentencePiece's own Python binding (Debian's python3-sentencepiece), for
metamath's tokenizer parity tests.

    /usr/bin/python3 tests/reference/sp_encode.py <tokenizer.model> <input.jsonl> [output.jsonl]

Reads JSON Lines {"text": "..."} and writes one line per input: {"ids": [...], "decoded": "..."}
(plain encode: no BOS/EOS, control-token text is not parsed; decoded = decode(ids)). A line
{"ids": [...]} gives {"decoded": "..."}, the decode of those ids.
"""
import json
import sys

import sentencepiece as spm


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
    out = open(sys.argv[3], "w", encoding="utf-8") if len(sys.argv) > 3 else sys.stdout
    with open(sys.argv[2], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if "ids" in rec:
                    out.write(json.dumps({"decoded": sp.decode(rec["ids"])}, ensure_ascii=False) + "\n")
                    continue
                text = rec["text"]
            except (ValueError, KeyError, TypeError) as e:
                sys.exit(f"{sys.argv[2]}:{n}: expected a JSON object with a string field \"text\" or a list \"ids\": {e}")
            ids = sp.encode(text)
            out.write(json.dumps({"ids": ids, "decoded": sp.decode(ids)}, ensure_ascii=False) + "\n")
    out.close()


if __name__ == "__main__":
    main()
