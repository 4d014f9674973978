"""ModelId: the one writer and reader of the model id text that messages carry."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssl_robot.model_ids import HASH_CHARS, ModelId

methods = st.from_regex(r'[a-z0-9_]{1,12}', fullmatch=True)
file_names = st.text(min_size=1, max_size=40)
hashes = st.text('0123456789abcdef', min_size=HASH_CHARS, max_size=HASH_CHARS)
model_ids = st.builds(ModelId, methods, file_names, st.integers(0, 10 ** 12), hashes)


@settings(max_examples=300, deadline=None, derandomize=True)  # no timing, same examples every run
@given(model_ids)
def test_parse_reads_back_what_format_writes(model_id):
    assert ModelId.parse(model_id.format()) == model_id
    assert str(model_id) == model_id.format()


def test_a_file_name_may_hold_colons_and_step_like_parts():
    text = 'tcn:copy:of:tcn.safetensors:step3:step10:0123456789ab'
    model_id = ModelId.parse(text)
    assert model_id == ModelId('tcn', 'copy:of:tcn.safetensors:step3', 10, '0123456789ab')
    assert model_id.format() == text


def test_of_checkpoint_keeps_the_hash_prefix():
    model_id = ModelId.of_checkpoint('ccvae', 'ccvae.safetensors', 5, 'abcdef0123456789' * 4)
    assert model_id.format() == 'ccvae:ccvae.safetensors:step5:abcdef012345'


@pytest.mark.parametrize('text', [
    '', 'none', 'tcn', 'tcn:tcn.safetensors:step10', 'tcn::step10:0123456789ab', ':tcn.safetensors:step10:0123456789ab',
    'tcn:tcn.safetensors:10:0123456789ab', 'tcn:tcn.safetensors:step-1:0123456789ab',
    'tcn:tcn.safetensors:step01:0123456789ab', 'tcn:tcn.safetensors:step10:0123456789AB',
    'tcn:tcn.safetensors:step10:0123', 'TCN:tcn.safetensors:step10:0123456789ab'])
def test_parse_refuses_text_that_is_no_model_id_and_names_it(text):
    with pytest.raises(ValueError, match='is not a model id') as refused:
        ModelId.parse(text)
    assert repr(text) in str(refused.value)


@pytest.mark.parametrize('fields, named', [
    (('', 'f', 1, '0' * HASH_CHARS), "method ''"),
    (('tcn', '', 1, '0' * HASH_CHARS), 'file name is empty'),
    (('tcn', 'f', -1, '0' * HASH_CHARS), 'step must be an int >= 0, got -1'),
    (('tcn', 'f', True, '0' * HASH_CHARS), 'got True'),
    (('tcn', 'f', 1, 'xyz'), "hash 'xyz'")])
def test_a_model_id_of_bad_fields_is_refused(fields, named):
    with pytest.raises(ValueError, match=named):
        ModelId(*fields)


def test_same_weights_compares_method_and_contents_not_file_name_or_step():
    model_id = ModelId.parse('tcn:tcn.safetensors:step10:0123456789ab')
    assert model_id.same_weights(ModelId.parse('tcn:copy:of:tcn.safetensors:step10:0123456789ab'))
    assert not model_id.same_weights(ModelId.parse('tcn:tcn.safetensors:step10:ba9876543210'))
    assert not model_id.same_weights(ModelId.parse('mftcn:tcn.safetensors:step10:0123456789ab'))
