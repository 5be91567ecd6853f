"""Synthetic answers for renderer tests and benchmarks: prose, lists, code, tables."""

from __future__ import annotations


def sample_answer(index: int = 0) -> str:
    words = " ".join(f"word{(index * 7 + i) % 13}" for i in range(60))
    code = "\n".join(f"    value_{i} = compute({i}, name='item {i}')  # step {i}" for i in range(12))
    return f"""## Section {index}

Some *emphasis*, **strong** text, `inline code` and a [link](https://example.com/{index}). {words}

1. first item with enough words to wrap past the edge of a narrow terminal window
2. second item
   - nested bullet

```python
def handler_{index}(request):
{code}
    return value_0
```

| name | value | note |
|------|------:|------|
| a{index} | {index} | first |
| b{index} | {index * 2} | second row |

> A quote that goes on for a while so that it wraps at least once on an 80 column screen, maybe.

---

"""


def answer_of_size(nbytes: int) -> str:
    parts, total, i = [], 0, 0
    while total < nbytes:
        part = sample_answer(i)
        parts.append(part)
        total += len(part.encode())
        i += 1
    return "".join(parts)


def tokens(text: str, size: int = 4) -> list[str]:
    """Token-like pieces of a few characters."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def prose_of_size(nbytes: int) -> str:
    """An everyday answer: paragraphs with a little emphasis and inline code, a short list."""
    parts, total, i = [], 0, 0
    while total < nbytes:
        words = " ".join(f"word{(i * 5 + k) % 17}" for k in range(45))
        part = (f"Paragraph {i} explains the point with **some emphasis**, a `name_{i}` in code and {words}.\n\n"
                f"- first note {i}\n- second note with *a little* more text {i}\n\n")
        parts.append(part)
        total += len(part.encode())
        i += 1
    return "".join(parts)
