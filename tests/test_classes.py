import pytest

from classifier.classes import CHINESE, CLASSES, NONE, display_name, to_class_id


def test_ten_classes_in_order():
    assert CLASSES == ("butterfly", "cat", "chicken", "cow", "dog", "elephant", "horse", "sheep", "spider",
                       "squirrel")
    assert set(CHINESE) == set(CLASSES)


@pytest.mark.parametrize("name, expected", [
    ("ragno", "spider"), ("spider", "spider"), ("Cane", "dog"), ("gatto", "cat"), ("scoiattolo", "squirrel"),
    ("mucca", "cow"), ("pecora", "sheep"), ("gallina", "chicken"), ("cavallo", "horse"), ("elefante", "elephant"),
    ("farfalla", "butterfly"), ("猫", "cat"), ("大象", "elephant"), (" DOG ", "dog"),
    ("null", NONE), (None, NONE), ("none", NONE), ("quail", None), ("owl", None), ("", None),
])
def test_aliases(name, expected):
    assert to_class_id(name) == expected


def test_display_name_shows_both_languages():
    assert display_name("squirrel") == "squirrel 松鼠"
