"""The vocabulary of labels, in one place: the ten Animals-10 classes, their Chinese names, every alias the data
sets use, "none of the 10", and ``"other: <name>"`` for a name that is no class.

Animals-10 folders are Italian (``cane``, ``ragno``...), the original project's labels mixed ``ragno`` and
``spider``, and people type Chinese names: :func:`to_class_id` maps all of them to one id, and
:func:`parse_label` turns any raw label into a class id, :data:`NONE` or ``"other: <name>"``.
"""

CLASSES = ("butterfly", "cat", "chicken", "cow", "dog", "elephant", "horse", "sheep", "spider", "squirrel")
NONE = "none"  # "none of the 10 classes"

CHINESE = {
    "butterfly": "蝴蝶", "cat": "猫", "chicken": "鸡", "cow": "牛", "dog": "狗",
    "elephant": "大象", "horse": "马", "sheep": "羊", "spider": "蜘蛛", "squirrel": "松鼠",
}

ITALIAN = {
    "farfalla": "butterfly", "gatto": "cat", "gallina": "chicken", "mucca": "cow", "cane": "dog",
    "elefante": "elephant", "cavallo": "horse", "pecora": "sheep", "ragno": "spider", "scoiattolo": "squirrel",
}

_EXTRA = {  # plural folder names and a few common synonyms seen in animal data sets
    "butterflies": "butterfly", "cats": "cat", "chickens": "chicken", "hen": "chicken", "rooster": "chicken",
    "cows": "cow", "dogs": "dog", "elephants": "elephant", "horses": "horse", "sheeps": "sheep",
    "spiders": "spider", "squirrels": "squirrel", "小鸡": "chicken", "母鸡": "chicken", "奶牛": "cow", "绵羊": "sheep",
}

# Words that mean "none of the 10". As a *label* (a folder, a results.json value) "other" means none; in an LLM's
# free-text *reply* "other" is ordinary English ("another animal"), so replies use NONE_REPLY_WORDS.
NONE_WORDS = ("none", "null", "other", "无", "都不是", "其他")
NONE_REPLY_WORDS = ("none", "null", "无", "都不是", "没有")
OTHER = "other: "  # prefix of a label that names no class, kept verbatim for review: "other: wolf"
TOP_K = 5  # classes shown by default (Classify tab, /classify)
# The pair the original project confused (cat recall 0.64, dog precision 0.83, most of it LLM label noise): the
# reports and the review's impact table watch the first one's recall and the second one's precision.
WATCHED = ("cat", "dog")
KEY_ROW = "1234567890qwertyuiop"  # review keys in class order; "n" is none and "x" leaves a photo out: never a class's


def class_keys(classes=CLASSES) -> list[str]:
    """The review tab's key for each class, in order: 1-9 and 0 for the first ten, then q, w, e... Refuses (a
    clear ``ValueError``) a class list longer than the keys there are."""
    if len(classes) > len(KEY_ROW):
        raise ValueError(f"{len(classes)} classes, but only {len(KEY_ROW)} review keys ({KEY_ROW}): add keys to "
                         "classifier.classes.KEY_ROW")
    return list(KEY_ROW[: len(classes)])


def rows_of(classes=CLASSES, per_row: int = 5) -> list[tuple]:
    """The classes in rows of ``per_row`` (the review tab's button grid)."""
    return [tuple(classes[i:i + per_row]) for i in range(0, len(classes), per_row)]

ALIASES = {
    **{c: c for c in CLASSES},
    **{zh: c for c, zh in CHINESE.items()},
    **ITALIAN,
    **_EXTRA,
}


def to_class_id(name: str | None) -> str | None:
    """Map a label as written anywhere (English, Italian, Chinese, any case) to a class id.

    Returns the class id, :data:`NONE` for "none of the 10" (also for ``None`` and the string ``"null"``),
    or ``None`` when the name is not a known label.
    """
    if name is None:
        return NONE
    key = str(name).strip().lower()
    if key in NONE_WORDS:
        return NONE
    return ALIASES.get(key)


def display_name(class_id: str) -> str:
    """``"cat 猫"``: the English id and the Chinese name, as the UI shows them (none: "none of the 10 animals")."""
    if class_id == NONE:
        return "none of the 10 animals 非这十种动物"
    return f"{class_id} {CHINESE[class_id]}" if class_id in CHINESE else class_id


# The original project's class list: English names, but "ragno" for spider. Its predict script scored only
# labels spelled exactly like these.
ORIGINAL_VOCABULARY = {("ragno" if c == "spider" else c): c for c in CLASSES}


def parse_label(value: str | None, aliases: bool = True) -> str:
    """One raw label -> class id, NONE, or ``"other: <name>"``.

    With ``aliases=False`` only the original project's spellings count as classes (``spider`` becomes
    ``"other: spider"``, as its predict script effectively did).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "null"):
        return NONE
    text = str(value).strip()
    if aliases:
        class_id = to_class_id(text)
        if class_id:
            return class_id
    elif text in ORIGINAL_VOCABULARY:
        return ORIGINAL_VOCABULARY[text]
    return OTHER + text
