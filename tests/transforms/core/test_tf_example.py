"""The hand-written tf.train.Example reader/writer agrees with TensorFlow's own proto and tf.data."""
import numpy as np
import pytest
import tensorflow as tf

from tessera.transforms.core import tf_example


def _tf_example() -> bytes:
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\x89PNG", b"x"])),
        "score": tf.train.Feature(float_list=tf.train.FloatList(value=[0.25, -1.5, 3.1])),
        "ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[7, -3, 2**40])),
        "empty": tf.train.Feature(),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_reads_what_tensorflow_writes():
    data = _tf_example()
    expected = {}
    for name, feature in tf.train.Example.FromString(data).features.feature.items():
        kind = feature.WhichOneof("kind")
        expected[name] = list(getattr(feature, kind).value) if kind else []
    assert tf_example.read_example(data) == expected
    assert tf_example.read_example(data)["ids"] == [7, -3, 2**40]


def test_tensorflow_reads_what_we_write(tmp_path):
    entries = b"".join(tf_example.bytes_feature_entry(tf_example.field(1, k.encode()), v)
                       for k, v in (("a", b"1"), ("b", b"\x00" * 300)))
    record = tf_example.field(1, entries)
    path = tmp_path / "x.tfrecord"
    path.write_bytes(tf_example.tfrecord_frame(record) * 2)
    rows = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    assert len(rows) == 2
    parsed = tf.train.Example.FromString(rows[0]).features.feature
    assert parsed["a"].bytes_list.value == [b"1"] and parsed["b"].bytes_list.value == [b"\x00" * 300]


@pytest.mark.parametrize("garbage", [b"\x0a\x05garbage", b"\x0a\xff", b"\x0d\x01\x02"])
def test_garbage_is_a_value_error(garbage):
    with pytest.raises(ValueError):
        tf_example.read_example(garbage)


def test_varint_round_trip():
    for n in (0, 1, 127, 128, 300, 2**35 + 5):
        assert tf_example.read_varint(tf_example.varint(n), 0) == (n, len(tf_example.varint(n)))
    assert np.isclose(tf_example.read_example(_tf_example())["score"][2], 3.1, atol=1e-6)
