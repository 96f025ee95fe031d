"""What a prompt says, per kind of dataset: MovieLens' movies (title, year, genres, ratings 1-5) or a
user's own catalogue (title and description, ratings on the dataset's own scale, or none when it is
implicit).

Each wording has its own prompt version: the version is part of every cache key and of every edge's
provenance, so answers to one wording are never read as answers to another. MovieLens' wording is
the one every cached answer and published result was asked with; it must not change without a new
version. A catalogue's scale is stated in its header (the LLM cannot know that 7 is a like on a 0-10
scale), and descriptions are cut short so ten candidates and ten history lines fit a small model's
context.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings
from pngnn.data.scale import RatingScale, rating_scale
from pngnn.data.store import Store

PROMPT_VERSION = "v1"  # MovieLens' wording
CATALOGUE_PROMPT_VERSION = "catalogue-v1"  # a user's catalogue (pngnn ingest --items)
DESCRIPTION_CHARS = 160  # of an item's text shown after its title

_YEAR_SUFFIX = r"\s*\(\d{4}\)\s*$"

QUESTION_PREFIX = (
    "Which candidate will this user like most, and which will they like least? "
    'Answer with JSON only, in the form {"like": <number>, "dislike": <number>}, '
    "using two different candidate numbers from 1 to "
)


@dataclass(frozen=True)
class Wording:
    """The fixed text of one kind of prompt, and how an item and a rating are written in it.

    ``label`` reads an items frame's title, year, genres, text and external_id columns;
    ``rating`` a history row's rating column (None: ratings are not shown)."""

    version: str
    system: str
    history_header: str
    empty_history: str
    candidate_header: str
    label: pl.Expr
    item_form: str  # how ``label`` reads, for the template
    rating: pl.Expr | None
    threshold: float

    def template(self) -> str:
        """The whole template, for logging next to the version (an MLflow artifact)."""
        rated = "; rated <r>" if self.rating is not None else ""
        return (f"[system]\n{self.system}\n[user]\n{self.history_header}\n- {self.item_form}{rated}\n...\n\n"
                f"{self.candidate_header}\n1. {self.item_form}\n...\n\n{QUESTION_PREFIX}<n>.")


def movie_label(genres_sep: str = ", ") -> pl.Expr:
    """'Title (year); Genre, Genre' with the year taken from the year column (titles in
    MovieLens repeat it in parentheses, which is stripped to avoid 'Heat (1995) (1995)')."""
    title = pl.col("title").fill_null("Unknown title").str.replace(_YEAR_SUFFIX, "")
    year = pl.when(pl.col("year").is_not_null()).then(pl.format(" ({})", pl.col("year"))).otherwise(pl.lit(""))
    genres = pl.col("genres").list.join(genres_sep).fill_null("")
    genres = pl.when(genres == "").then(pl.lit("genre unknown")).otherwise(genres)
    return pl.concat_str([title, year, pl.lit("; "), genres])


def catalogue_label(chars: int = DESCRIPTION_CHARS) -> pl.Expr:
    """'Title: description' with the description's whitespace collapsed and cut at ``chars``
    (an ellipsis marks the cut); an item without a title is named by the user's own id."""
    title = pl.col("title").str.strip_chars()
    title = pl.when(title.is_null() | (title == "")).then(pl.format("item {}", pl.col("external_id"))).otherwise(title)
    text = pl.col("text").str.replace_all(r"\s+", " ").str.strip_chars()
    short = pl.when(text.str.len_chars() > chars).then(
        pl.concat_str([text.str.slice(0, chars).str.strip_chars_end(), pl.lit("…")])).otherwise(text)
    return pl.when(short.is_null() | (short == "")).then(title).otherwise(pl.concat_str([title, pl.lit(": "), short]))


def movielens_wording(threshold: float) -> Wording:
    """The wording every MovieLens answer was asked with (prompt version ``v1``)."""
    return Wording(
        version=PROMPT_VERSION,
        system=("You are a movie recommender. You predict a user's taste from the movies they rated. "
                "You answer only with a JSON object."),
        history_header="Here are movies a user has rated from 1 (hated it) to 5 (loved it):",
        empty_history="(this user has not rated any movie yet)",
        candidate_header="Candidate movies the user has not rated yet:",
        label=movie_label(),
        item_form="<title> (<year>); <genres>",
        rating=pl.col("rating").round(0).cast(pl.Int32),
        threshold=threshold,
    )


def _number(value: float) -> str:
    return f"{value:g}"


def catalogue_wording(scale: RatingScale) -> Wording:
    """A user's catalogue: titles and descriptions; the scale and threshold said in the header,
    or, for implicit data, the items the user chose (no ratings)."""
    if scale.implicit:
        header, rating = "Here are items a user has chosen before:", None
        empty, candidates = "(this user has not chosen any item yet)", "Candidate items the user has not chosen yet:"
    else:
        header = (f"Here are items a user has rated from {_number(scale.low)} to {_number(scale.high)}; "
                  f"a rating above {_number(scale.threshold)} means they liked it:")
        # Ratings as the user's file has them (4.5 stays 4.5, 7.0 reads 7), not rounded to a star.
        rating = pl.col("rating").cast(pl.Float64).round(2).cast(pl.String).str.replace(r"\.0$", "")
        empty, candidates = "(this user has not rated any item yet)", "Candidate items the user has not rated yet:"
    return Wording(
        version=CATALOGUE_PROMPT_VERSION,
        system=("You are a recommender. You predict a user's taste from the items they rated or chose. "
                "You answer only with a JSON object."),
        history_header=header,
        empty_history=empty,
        candidate_header=candidates,
        label=catalogue_label(),
        item_form="<title>: <description>",
        rating=rating,
        threshold=scale.threshold,
    )


def wording_for(store: Store, dataset: str) -> Wording:
    """The wording of ``dataset``'s prompts; a user's dataset without any titled item is refused in
    one line (the LLM would choose among bare ids)."""
    scale = rating_scale(store, dataset)
    if not scale.own_data:
        return movielens_wording(scale.threshold)
    if not scale.titled_items:
        raise PngnnError(f"the LLM step shows item titles and none of {dataset}'s {scale.rated_items} rated items has "
                         "one", f"ingest a catalogue with it: `pngnn ingest --name {dataset} --ratings FILE --items "
                         "CATALOGUE --item-columns id=...,title=...,text=...`")
    return catalogue_wording(scale)


def prompt_version_for(store: Store, dataset: str) -> str:
    """The prompt version a dataset's prompts are asked with (``wording_for``'s, without its checks)."""
    return PROMPT_VERSION if not rating_scale(store, dataset).own_data else CATALOGUE_PROMPT_VERSION


def check_prompt_version(store: Store, dataset: str, llm: LLMSettings) -> str:
    """The prompt version ``dataset`` is asked with (its wording's: MovieLens' or a catalogue's); an
    error when ``llm`` pins another one, whose wording this code no longer has. Refuses a user's
    dataset without titles (``wording_for``)."""
    version = wording_for(store, dataset).version
    if llm.prompt_version not in (None, version):
        raise PngnnError(f"prompt version '{llm.prompt_version}' cannot be asked: this code asks {dataset} with prompt "
                         f"version '{version}'", "leave the prompt version unset, or check out the code that had it")
    return version
