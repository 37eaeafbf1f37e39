import numpy as np
import pytest

from huale.data.yolo import read_yolo, yolo_label_path
from huale.errors import ConfigError, DataError


@pytest.fixture
def yolo_root(tmp_path, write_image):
    """A YOLO dataset: train has a.jpg (labelled) and sub/b.jpg (no label file), val has c.jpg."""
    root = tmp_path / "yolo"
    write_image(root / "images" / "train" / "a.jpg")
    write_image(root / "images" / "train" / "sub" / "b.jpg")
    write_image(root / "images" / "val" / "c.jpg")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n\n1 0.25 0.25 0.5 0.5\n")
    (root / "labels" / "val" / "c.txt").write_text("1 0.5 0.5 1 1\n")
    return root


def write_yaml(path, text):
    path.write_text(text)
    return path


def test_list_names_and_missing_label_file(yolo_root):
    data = write_yaml(
        yolo_root / "data.yaml", "train: images/train\nval: images/val\nnames: [cat, dog]\n"
    )
    dataset = read_yolo(data, "train")
    assert dataset.class_names == ["cat", "dog"]
    assert dataset.ids == ["a", "sub/b"]
    a = dataset.record("a")
    # 32 x 24 image: cx 16, cy 12, w 8, h 12 -> (12, 6, 20, 18); cx 8, cy 6, w 16, h 12 -> (0, 0, 16, 12)
    np.testing.assert_allclose(a.boxes, [[12, 6, 20, 18], [0, 0, 16, 12]])
    assert a.labels.tolist() == [1, 2]
    assert not a.difficult.any()
    assert dataset.record("sub/b").num_boxes == 0
    assert dataset.report.notes == {"images without a label file (no objects)": 1}
    assert dataset.report.boxes == 2


def test_dict_names_and_root_path(yolo_root, tmp_path):
    config = f"path: {yolo_root.name}\nval: images/val\nnames:\n  0: cat\n  1: dog\nnc: 2\n"
    data = write_yaml(tmp_path / "data.yaml", config)
    dataset = read_yolo(data, "val")
    assert dataset.class_names == ["cat", "dog"]
    assert dataset.ids == ["c"]
    np.testing.assert_allclose(dataset.records[0].boxes, [[0, 0, 32, 24]])
    assert dataset.records[0].labels.tolist() == [2]


def test_names_from_nc_only(yolo_root):
    data = write_yaml(yolo_root / "data.yaml", "val: images/val\nnc: 2\n")
    assert read_yolo(data, "val").class_names == ["class_0", "class_1"]


def test_list_file_and_list_of_entries(yolo_root):
    (yolo_root / "train.txt").write_text("./images/train/a.jpg\n# comment\nimages/val/c.jpg\n")
    data = write_yaml(
        yolo_root / "data.yaml", "train: train.txt\nval: [images/val]\nnames: [cat, dog]\n"
    )
    train = read_yolo(data, "train")
    assert train.ids == ["images/train/a", "images/val/c"]
    assert train.record("images/val/c").labels.tolist() == [2]
    assert read_yolo(data, "val").ids == ["c"]


def test_given_class_names_remap_labels(yolo_root):
    data = write_yaml(yolo_root / "data.yaml", "train: images/train\nnames: [cat, dog]\n")
    dataset = read_yolo(data, "train", class_names=["dog", "cat"])
    assert dataset.record("a").labels.tolist() == [2, 1]
    with pytest.raises(DataError, match="class 'dog' is not in class_names"):
        read_yolo(data, "train", class_names=["cat"])
    with pytest.raises(ConfigError, match="duplicates"):
        read_yolo(data, "train", class_names=["cat", "dog", "cat"])


def test_slightly_outside_values_are_clipped_and_counted(yolo_root):
    # cx 0.9 w 0.3 -> x from 0.75 to 1.05 of 32 px -> 24 to 33.6, clipped to 32;
    # cx 1.005 (within the 0.01 tolerance) w 0.005 -> 32.08 to 32.24 px -> clipped to 32 to 32:
    # both boxes are clipped (2), the second has no area left and is dropped (1)
    (yolo_root / "labels" / "train" / "a.txt").write_text(
        "0 0.9 0.5 0.3 0.5\n0 1.005 0.5 0.005 0.5\n"
    )
    data = write_yaml(yolo_root / "data.yaml", "train: images/train\nnames: [cat]\n")
    dataset = read_yolo(data, "train")
    np.testing.assert_allclose(dataset.record("a").boxes, [[24, 6, 32, 18]])
    assert dataset.report.clipped_boxes == 2
    assert dataset.report.dropped_zero_area == 1


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("0 0.5 0.5 0.2", "line 2: expected 5 fields 'class cx cy w h', got 4"),
        ("0 0.5 0.5 0.2 0.2 0.9", "line 2: expected 5 fields"),
        ("0 0.5 abc 0.2 0.2", "line 2: non-numeric field"),
        ("2 0.5 0.5 0.2 0.2", r"line 2: class index 2 is outside 0\.\.1"),
        ("-1 0.5 0.5 0.2 0.2", "line 2: class index -1 is outside"),
        ("0.5 0.5 0.5 0.2 0.2", "line 2: class index 0.5 is outside"),
        ("0 0.5 0.5 1.5 0.2", r"line 2: cx cy w h must be fractions in \[0, 1\]"),
        ("0 -0.2 0.5 0.1 0.2", "line 2: cx cy w h must be fractions"),
        ("0 nan 0.5 0.1 0.2", "line 2: non-finite value"),
    ],
)
def test_bad_label_lines_name_file_and_line(yolo_root, line, problem):
    label_file = yolo_root / "labels" / "train" / "a.txt"
    label_file.write_text(f"0 0.5 0.5 0.2 0.2\n{line}\n")
    data = write_yaml(yolo_root / "data.yaml", "train: images/train\nnames: [cat, dog]\n")
    with pytest.raises(DataError, match=problem) as error:
        read_yolo(data, "train")
    assert error.value.path == str(label_file)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("train: [unclosed\n", "invalid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("train: images/train\n", "neither 'names' nor 'nc'"),
        ("train: images/train\nnames: [cat]\nnc: 2\n", "'nc' is 2 but 'names' has 1"),
        ("train: images/train\nnames: {0: cat, 2: dog}\n", "'names' keys must be"),
        ("train: images/train\nnames: [cat, cat]\n", "'names' has duplicates"),
        ("val: images/val\nnames: [cat]\n", "no 'train' entry \\(entries: val\\)"),
    ],
)
def test_bad_yaml_names_the_yaml(yolo_root, config, problem):
    data = write_yaml(yolo_root / "data.yaml", config)
    with pytest.raises(DataError, match=problem) as error:
        read_yolo(data, "train")
    assert error.value.path == str(data)


def test_missing_split_folder_and_missing_listed_image(yolo_root):
    data = write_yaml(
        yolo_root / "data.yaml", "train: images/nothing\nval: val.txt\nnames: [cat]\n"
    )
    with pytest.raises(DataError, match="split entry .images/nothing. of .* not found"):
        read_yolo(data, "train")
    (yolo_root / "val.txt").write_text("images/val/ghost.jpg\n")
    with pytest.raises(DataError, match="image file not found") as error:
        read_yolo(data, "val")
    assert error.value.path.endswith("ghost.jpg")


def test_missing_yaml(tmp_path):
    with pytest.raises(DataError, match="dataset yaml not found"):
        read_yolo(tmp_path / "data.yaml")


def test_label_path_replaces_last_images_folder(tmp_path):
    image = tmp_path / "images" / "set" / "images" / "x.jpg"
    assert yolo_label_path(image) == tmp_path / "images" / "set" / "labels" / "x.txt"
    assert yolo_label_path(tmp_path / "pics" / "x.png") == tmp_path / "pics" / "x.txt"
