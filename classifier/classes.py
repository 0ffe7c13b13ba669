"""The ten Animals-10 classes, their Chinese names and every alias the data sets use.

Animals-10 folders are Italian (``cane``, ``ragno``...), the original project's labels mixed ``ragno`` and
``spider``, and people type Chinese names: :func:`to_class_id` maps all of them to one id.
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

_NONE_WORDS = ("none", "null", "other", "无", "都不是", "其他")

ALIASES = {
    **{c: c for c in CLASSES},
    **{zh: c for c, zh in CHINESE.items()},
    **ITALIAN,
    **_EXTRA,
}


def to_class_id(name):
    """Map a label as written anywhere (English, Italian, Chinese, any case) to a class id.

    Returns the class id, :data:`NONE` for "none of the 10" (also for ``None`` and the string ``"null"``),
    or ``None`` when the name is not a known label.
    """
    if name is None:
        return NONE
    key = str(name).strip().lower()
    if key in _NONE_WORDS:
        return NONE
    return ALIASES.get(key)


def display_name(class_id):
    """``"cat 猫"``: the English id and the Chinese name, as the UI shows them."""
    return f"{class_id} {CHINESE[class_id]}" if class_id in CHINESE else class_id
