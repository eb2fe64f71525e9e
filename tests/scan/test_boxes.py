"""Following one object from view to view by its boxes (appliance/scan/boxes.py)."""

from __future__ import annotations

from appliance.scan.boxes import a_small_part_of

WHOLE = (114, 58, 524, 464)  # held-out seed 3709's lens in its centred view


def test_the_middle_of_a_print_is_a_small_part_of_it():
    assert a_small_part_of((255, 192, 403, 338), WHOLE)  # its collapsed top's dark middle: 13 % of the box


def test_the_print_itself_or_most_of_it_is_no_small_part():
    assert not a_small_part_of(WHOLE, WHOLE)
    assert not a_small_part_of((130, 41, 509, 412), WHOLE)  # the lens boxed again a little off
    assert not a_small_part_of((200, 150, 420, 380), WHOLE)  # 30 % of it


def test_a_small_box_beside_the_print_is_not_a_part_of_it():
    assert not a_small_part_of((530, 200, 560, 230), WHOLE)  # its centre outside
    assert not a_small_part_of((10, 10, 20, 20), (0, 0, 0, 0))  # an empty box holds nothing
