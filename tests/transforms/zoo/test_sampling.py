"""Pure tests of the zoo's keyed hyperparameter sampling and population grouping."""
import math

import pytest

from tessera.transforms.zoo import sampling as zs


def test_sampling_is_keyed_by_seed_and_index():
    assert zs.sample_network(3, 17) == zs.sample_network(3, 17)
    assert zs.sample_network(3, 17) != zs.sample_network(4, 17)
    assert zs.sample_network(3, 17) != zs.sample_network(3, 18)
    assert zs.network_seed(0, 1) == zs.network_seed(0, 1) != zs.network_seed(1, 0)


def test_samples_stay_in_the_paper_ranges_and_cover_all_choices():
    configs = [zs.sample_network(0, i) for i in range(600)]
    assert {c.optimizer for c in configs} == set(zs.OPTIMIZERS)
    assert {c.activation for c in configs} == set(zs.ACTIVATIONS)
    assert {c.w_init for c in configs} == set(zs.W_INITS)
    assert {c.train_fraction for c in configs} == set(zs.TRAIN_FRACTIONS)
    for c in configs:
        assert 5e-4 <= c.learning_rate <= 5e-2
        assert 1e-8 <= c.l2reg <= 1e-2
        assert 0.0 <= c.dropout <= 0.7
        assert 1e-3 <= c.init_std <= 0.5
    # log-uniform: about half of the learning rates below the geometric midpoint
    below = sum(c.learning_rate < math.sqrt(5e-4 * 5e-2) for c in configs) / len(configs)
    assert 0.4 < below < 0.6


def test_populations_share_discrete_choices_and_cover_every_network_once():
    pops = zs.populations(0, 200, 8)
    seen = [i for p in pops for i in p.indices]
    assert sorted(seen) == list(range(200))
    for p in pops:
        assert 1 <= len(p.indices) <= 8
        assert list(p.indices) == sorted(p.indices)
        assert {zs.sample_network(0, i).group for i in p.indices} == {(p.optimizer, p.activation, p.w_init)}
    assert [p.population_id for p in pops] == list(range(len(pops)))
    assert [p.indices[0] for p in pops] == sorted(p.indices[0] for p in pops)


def test_population_composition_depends_only_on_seed_count_and_size():
    assert zs.populations(5, 50, 4) == zs.populations(5, 50, 4)
    # a bigger zoo keeps every network's config; the first networks keep their group mates
    small = {p.indices for p in zs.populations(5, 50, 50)}
    big = zs.populations(5, 80, 50)
    assert all(any(set(s) <= set(b.indices) for b in big) for s in small)


def test_checkpoint_epochs_are_the_release_schedule_capped():
    assert zs.checkpoint_epochs(86) == (0, 1, 2, 3, 20, 40, 60, 80, 86)
    assert zs.checkpoint_epochs(3) == (0, 1, 2, 3)
    assert zs.checkpoint_epochs(10) == (0, 1, 2, 3, 10)
    assert zs.checkpoint_epochs(0) == (0,)
    with pytest.raises(ValueError):
        zs.checkpoint_epochs(-1)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        zs.populations(0, 0, 4)
    with pytest.raises(ValueError):
        zs.populations(0, 4, 0)
    with pytest.raises(ValueError):
        zs.sample_network(0, -1)
