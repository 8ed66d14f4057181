"""nn/oov.py: the OOV rows and ID dropout (OOVArch), and the text-to-ID map."""

import torch

from recbole_dlrrec.nn.oov import OOVArch, TextToIdMap

D = 4


def _arch(rates=(0.0, 0.0), seed=0):
    known_users = torch.tensor([False, True, True, False, True])  # user 3 unseen (0: padding)
    known_items = torch.tensor([False, True, False, True])  # item 2 unseen
    return OOVArch([0, 2], [known_users, known_items], D, list(rates), seed=seed)


def _batch(n=6):
    token_ids = torch.tensor([[1, 5, 1], [3, 5, 2], [4, 6, 3], [2, 7, 2], [3, 7, 1], [1, 5, 3]])[:n]
    return token_ids, torch.randn(n, 3, D)


def test_unseen_ids_take_their_fields_oov_row_and_the_rest_is_untouched():
    arch = _arch().eval()
    with torch.no_grad():
        arch.oov_rows.copy_(torch.arange(2 * D, dtype=torch.float).view(2, D) + 1)
    token_ids, vectors = _batch()
    out = arch(token_ids, vectors)
    assert out.shape == vectors.shape
    unseen_user = token_ids[:, 0] == 3
    unseen_item = token_ids[:, 2] == 2
    assert torch.equal(out[unseen_user, 0], arch.oov_rows[0].detach().expand(int(unseen_user.sum()), D))
    assert torch.equal(out[unseen_item, 2], arch.oov_rows[1].detach().expand(int(unseen_item.sum()), D))
    assert torch.equal(out[~unseen_user, 0], vectors[~unseen_user, 0])
    assert torch.equal(out[~unseen_item, 2], vectors[~unseen_item, 2])
    assert torch.equal(out[:, 1], vectors[:, 1])  # a field it does not handle


def test_id_dropout_replaces_about_the_rate_in_training_and_none_in_evaluation():
    arch = _arch(rates=(0.3, 0.1), seed=5)
    ids = torch.ones(20000, dtype=torch.long)  # a known id for both fields
    assert abs(arch.replaced(0, ids).float().mean().item() - 0.3) < 0.02
    assert abs(arch.replaced(1, ids).float().mean().item() - 0.1) < 0.015
    arch.eval()
    assert not arch.replaced(0, ids).any() and not arch.replaced(1, ids).any()


def test_same_seed_same_masks_and_the_global_stream_is_untouched():
    ids = torch.ones(500, dtype=torch.long)
    torch.manual_seed(1)
    first = _arch((0.5, 0.5), seed=3).replaced(0, ids)
    after_first = torch.rand(3)
    torch.manual_seed(1)
    again = _arch((0.5, 0.5), seed=3).replaced(0, ids)
    assert torch.equal(first, again)
    assert torch.equal(torch.rand(3), after_first)  # the arch draws from its own generator
    assert not torch.equal(_arch((0.5, 0.5), seed=4).replaced(0, ids), first)


def test_substitutes_replace_the_oov_row_where_available():
    arch = _arch().eval()
    token_ids, vectors = _batch()
    subs = torch.full((6, D), 9.0)
    available = torch.tensor([True, False, True, True, True, True])
    out = arch(token_ids, vectors, substitutes={0: (subs, available)})
    assert torch.equal(out[4, 0], subs[4])  # unseen user 3, with a substitute
    assert torch.equal(out[1, 0], torch.zeros(D))  # unseen user 3, none: the OOV row (zeros at start)
    assert torch.equal(out[0, 0], vectors[0, 0])  # a known user keeps its row


def test_oov_rows_get_gradients_from_replaced_rows_only():
    arch = _arch().eval()
    token_ids, vectors = _batch()
    arch(token_ids[[0, 5]], vectors[[0, 5]]).sum().backward()  # no unseen id
    assert arch.oov_rows.grad is None or not arch.oov_rows.grad.any()
    arch(token_ids, vectors).sum().backward()
    assert arch.oov_rows.grad[0].abs().sum() > 0 and arch.oov_rows.grad[1].abs().sum() > 0


def test_text_to_id_map_fits_warm_rows_only_and_leaves_its_inputs_alone():
    torch.manual_seed(0)
    mapper = TextToIdMap(D, [8])
    text = torch.randn(5, D, requires_grad=True)
    ids = torch.randn(5, D, requires_grad=True)
    warm = torch.tensor([True, True, False, True, False])
    loss = mapper.fit_loss(text, ids, warm)
    expected = (mapper(text) - ids).pow(2).mean(1)[warm].mean()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert text.grad is None and ids.grad is None
    assert mapper(text).shape == (5, D)
    cold = mapper.fit_loss(text, ids, torch.zeros(5, dtype=torch.bool))
    assert cold.item() == 0.0


def test_first_order_shift_swaps_the_replaced_rows_weights_for_the_oov_bias():
    known = [torch.tensor([False, True, True]), torch.tensor([False, True, True])]
    arch = OOVArch([0, 1], known, D, [0.0, 0.0], seed=0, first_order=True)
    with torch.no_grad():
        arch.oov_bias.copy_(torch.tensor([0.5, -2.0]))
    weights = torch.tensor([[1.0, 3.0], [1.0, 3.0], [1.0, 3.0]])
    replaced = torch.tensor([[False, False], [True, False], [True, True]])
    shift = arch.first_order_shift(weights, replaced)
    assert torch.equal(weights.sum(1) + shift, torch.tensor([4.0, 3.5, -1.5]))
    assert _arch().oov_bias is None  # only with first_order
