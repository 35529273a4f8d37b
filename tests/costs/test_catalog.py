"""The price catalog: consistent units, dates and sources, and a price for every stand-in endpoint."""

import re

import pytest

from labkit.costs import catalog
from labkit.databricks import foundation


def test_catalog_has_at_least_six_chat_models():
    assert len(catalog.chat_models()) >= 6


@pytest.mark.parametrize("price", catalog.load_catalog(), ids=lambda p: p.endpoint)
def test_dollars_match_dbu_times_rate(price):
    # Databricks publishes DBU rates and a $/DBU; the dollar columns must be their product,
    # rounded to the cent as the pricing page shows it.
    assert price.usd_per_dbu == pytest.approx(0.07)
    assert price.input_usd_per_1m == pytest.approx(price.input_dbu_per_1m * price.usd_per_dbu, abs=0.005)
    assert price.output_usd_per_1m == pytest.approx(price.output_dbu_per_1m * price.usd_per_dbu, abs=0.005)


@pytest.mark.parametrize("price", catalog.load_catalog(), ids=lambda p: p.endpoint)
def test_row_names_source_and_date(price):
    assert re.fullmatch(r"20\d\d-(0[1-9]|1[0-2])", price.as_of)
    assert price.source
    assert price.status in ("active", "retired")
    assert price.task in ("chat", "embeddings")
    assert price.endpoint.startswith("databricks-")


def test_embedding_models_bill_input_only():
    for price in catalog.load_catalog():
        if price.task == "embeddings":
            assert price.output_usd_per_1m == 0


def test_published_prices_of_llama_models():
    # Hand-checked against the list prices: Llama 3.3 70B $0.50 / $1.50, Llama 3.1 8B $0.15 / $0.45.
    llama_70b = catalog.get_price("databricks-meta-llama-3-3-70b-instruct")
    assert (llama_70b.input_usd_per_1m, llama_70b.output_usd_per_1m) == (0.50, 1.50)
    llama_8b = catalog.get_price("Meta Llama 3.1 8B Instruct")
    assert (llama_8b.input_usd_per_1m, llama_8b.output_usd_per_1m) == (0.15, 0.45)


def test_request_cost_by_hand():
    price = catalog.get_price("databricks-meta-llama-3-3-70b-instruct")
    # 2,000 input tokens at $0.50/M + 500 output tokens at $1.50/M = $0.001 + $0.00075
    assert price.cost(2000, 500) == pytest.approx(0.00175)


def test_every_stand_in_endpoint_has_a_price():
    for name in foundation.PAY_PER_TOKEN:
        assert catalog.get_price(name).endpoint == name


def test_unknown_model_lists_known_endpoints():
    with pytest.raises(KeyError, match="databricks-meta-llama-3-3-70b-instruct"):
        catalog.get_price("gpt-17")
