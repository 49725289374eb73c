#!/usr/bin/env python3
"""How many values FTS5's hash of pending terms gives the trigram tokenizer's terms.

FTS5 (SQLite's full-text index) gathers the terms of the messages being indexed in a hash
table; its hash function, `fts5HashKey2` in sqlite3.c, is modelled here for the three-byte
terms of the trigram tokenizer (lowercase letters and space). Prints how many distinct hash
values they take, and the average chain a look-up walks for a few table sizes.

    python3 bench/fts5_trigram_hash.py
"""

import collections
import itertools


def fts5_hash_key2(prefix, term):
    """fts5HashKey2 before the modulo: the term's bytes last to first, then the prefix byte."""
    h = 13
    for byte in reversed(term):
        h = ((h << 3) ^ h ^ byte) & 0xFFFFFFFF
    return ((h << 3) ^ h ^ prefix) & 0xFFFFFFFF


def main():
    letters = b"abcdefghijklmnopqrstuvwxyz "
    terms = [bytes(t) for t in itertools.product(letters, repeat=3)]
    # The prefix byte of a term of the first column.
    hashes = collections.Counter(fts5_hash_key2(ord("0"), t) for t in terms)
    print(f"{len(terms)} trigrams take {len(hashes)} hash values "
          f"(at most {max(hashes.values())} trigrams share one)")
    for slots in (4096, 16384, 65536):
        used = collections.Counter(h % slots for h in hashes.elements())
        print(f"{slots:>6} slots: {len(used)} used, chains of {len(terms) / len(used):.1f} on average")


if __name__ == "__main__":
    main()
