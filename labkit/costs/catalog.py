"""The price catalog: pay-per-token prices of Databricks Foundation Model APIs, with sources and dates.

Prices live in ``prices.csv`` next to this module, one row per model. A row gives the endpoint name,
the provider, and list prices in DBU and in US dollars per million input and output tokens. It also
gives the dollars per DBU used to convert them, the source and the month they were read. Each row also
says which tokenizer counts the model's tokens here (``count_tokenizer``) and whether that is the
model's own tokenizer (``count_exact``) or the nearest one available offline.

>>> price = get_price("databricks-meta-llama-3-3-70b-instruct")
>>> price.input_usd_per_1m, price.output_usd_per_1m, price.as_of
(0.5, 1.5, '2026-06')
>>> round(price.input_dbu_per_1m * price.usd_per_dbu, 2)
0.5
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Price:
    """One row of the catalog; prices are US dollars (or DBU) per million tokens."""

    model: str
    endpoint: str
    provider: str
    task: str                     # "chat" or "embeddings"
    status: str                   # "active" or "retired"
    real_tokenizer: str
    count_tokenizer: str
    count_exact: bool
    chat_template: str            # a llama.cpp template name, "gemma", "chatml", or "" for none
    input_dbu_per_1m: float
    output_dbu_per_1m: float      # 0 for embedding models, which bill input tokens only
    usd_per_dbu: float
    input_usd_per_1m: float
    output_usd_per_1m: float
    source: str
    as_of: str                    # year and month the price was read, "YYYY-MM"

    def cost(self, input_tokens: int, output_tokens: int = 0) -> float:
        """Return the list price in dollars of one request with these token counts.

        >>> get_price("databricks-meta-llama-3-1-8b-instruct").cost(1_000_000, 1_000_000)
        0.6
        """
        return (input_tokens * self.input_usd_per_1m + output_tokens * self.output_usd_per_1m) / 1e6


def _number(text: str) -> float:
    return float(text) if text.strip() else 0.0


@functools.cache
def load_catalog() -> tuple[Price, ...]:
    """Return every row of ``prices.csv``, in file order."""
    text = resources.files("labkit.costs").joinpath("prices.csv").read_text(encoding="utf-8")
    prices = []
    for row in csv.DictReader(io.StringIO(text)):
        prices.append(Price(
            model=row["model"], endpoint=row["endpoint"], provider=row["provider"], task=row["task"],
            status=row["status"], real_tokenizer=row["real_tokenizer"],
            count_tokenizer=row["count_tokenizer"], count_exact=row["count_exact"] == "yes",
            chat_template=row["chat_template"],
            input_dbu_per_1m=_number(row["input_dbu_per_1m"]),
            output_dbu_per_1m=_number(row["output_dbu_per_1m"]),
            usd_per_dbu=_number(row["usd_per_dbu"]),
            input_usd_per_1m=_number(row["input_usd_per_1m"]),
            output_usd_per_1m=_number(row["output_usd_per_1m"]),
            source=row["source"], as_of=row["as_of"],
        ))
    return tuple(prices)


def get_price(name: str) -> Price:
    """Return the row whose endpoint name or model name is ``name`` (case-insensitive).

    Raises ``KeyError`` listing the endpoint names when none matches.
    """
    requested = name.strip().lower()
    for price in load_catalog():
        if requested in (price.endpoint.lower(), price.model.lower()):
            return price
    known = ", ".join(p.endpoint for p in load_catalog())
    raise KeyError(f"no price for {name!r}; known endpoints: {known}")


def chat_models(*, include_retired: bool = True) -> list[Price]:
    """Return the chat models of the catalog, optionally without the retired ones."""
    return [p for p in load_catalog()
            if p.task == "chat" and (include_retired or p.status != "retired")]
