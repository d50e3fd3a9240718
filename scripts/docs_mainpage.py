#!/usr/bin/env python3
"""The README as the API reference's main page: a copy whose headings carry GitHub's anchors as
Doxygen labels ({#anchor}), so that the README's own section links resolve in the HTML too, and
whose links to other Markdown files name them.
Usage: docs_mainpage.py README.md OUT.md"""
import re
import sys


def github_anchor(title):
    """GitHub's id of a heading: lower case, punctuation but '-' and '_' dropped, spaces as '-'."""
    text = re.sub(r"[^\w\- ]", "", title.lower())
    return text.replace(" ", "-")


def main():
    source, target = sys.argv[1], sys.argv[2]
    out, in_code = [], False
    for line in open(source, encoding="utf-8").read().split("\n"):
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"^(#{1,6}) (.*)$", line)
        if heading:
            line = f"{line} {{#{github_anchor(heading.group(2))}}}"
        elif not in_code:
            # Doxygen takes a link to another Markdown file for a page of its own: the repository's
            # path instead.
            line = re.sub(r"\[([^\]]*)\]\(([^)#:]+\.md)(#[^)]*)?\)",
                          lambda m: f"`{m.group(2)}`" if m.group(1) == m.group(2) else f"{m.group(1)} (`{m.group(2)}`)",
                          line)
        out.append(line)
    with open(target, "w", encoding="utf-8") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
