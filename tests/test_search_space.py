"""Tests for jal.search_space: depths, minimal expansions, reachability, parameter counts."""

import hypothesis
import hypothesis.strategies as st
import pytest

from jal.search_space import Architecture, SearchSpace, parse_architecture


@pytest.mark.parametrize(
    'start, expected', [((1, 1), (1, 2)), ((2, 2), (2, 3)), ((1, 3), (1, 4)), ((5, 2), (4, 3)),
                        ((4, 4), (4, 5))])
def test_wider_matches_spec_examples(start, expected):
  assert Architecture(*start).wider() == Architecture(*expected)


def test_deeper_adds_one_block():
  assert Architecture(3, 2).deeper() == Architecture(4, 2)


def test_depth_formula():
  assert Architecture(1, 1).depth == 4  # 1*1*2 + 2
  assert Architecture(2, 4).depth == 18  # ResNet-18


def _brute_force_wider(arch, max_blocks=100):
  """argmin_{i' > 0} |A(i', j+1)| s.t. |A(i', j+1)| > |A(i, j)|, by enumeration."""
  feasible = [Architecture(i, arch.stacks + 1) for i in range(1, max_blocks)
              if Architecture(i, arch.stacks + 1).depth > arch.depth]
  return min(feasible, key=lambda a: a.depth)


def _brute_force_deeper(arch, max_blocks=100):
  feasible = [Architecture(i, arch.stacks) for i in range(1, max_blocks)
              if Architecture(i, arch.stacks).depth > arch.depth]
  return min(feasible, key=lambda a: a.depth)


@pytest.mark.parametrize('arch', list(SearchSpace().nodes()), ids=str)
def test_expansions_are_strictly_deeper_and_minimal(arch):
  assert arch.deeper().depth > arch.depth
  assert arch.wider().depth > arch.depth
  assert arch.wider() == _brute_force_wider(arch)
  assert arch.deeper() == _brute_force_deeper(arch)


@hypothesis.given(st.integers(1, 50), st.integers(1, 20))
def test_expansions_minimal_property(blocks, stacks):
  arch = Architecture(blocks, stacks)
  wider = arch.wider()
  assert wider.stacks == stacks + 1
  assert wider.depth > arch.depth
  # One block fewer per stack would not be deeper than arch.
  assert wider.blocks == 1 or Architecture(wider.blocks - 1, stacks + 1).depth <= arch.depth


@pytest.mark.parametrize('space', [SearchSpace(), SearchSpace(5, 4), SearchSpace(3, 6)], ids=str)
def test_every_node_reachable_from_root(space):
  seen, frontier = {space.root}, [space.root]
  while frontier:
    node = frontier.pop()
    for child in space.expansions(node):
      assert child in space
      if child not in seen:
        seen.add(child)
        frontier.append(child)
  assert seen == set(space.nodes())
  assert len(seen) == space.max_blocks * space.max_stacks


def test_candidates_current_first_and_restricted_to_grid():
  space = SearchSpace(2, 2)
  assert space.candidates(Architecture(1, 1)) == (Architecture(1, 1), Architecture(2, 1),
                                                   Architecture(1, 2))
  assert space.candidates(Architecture(2, 2)) == (Architecture(2, 2),)  # A(3,2), A(2,3) leave the grid.
  with pytest.raises(ValueError, match='outside the search space'):
    space.candidates(Architecture(3, 1))


def test_param_counts_match_spec():
  assert Architecture(1, 1).num_params(10) == 76_682
  assert Architecture(2, 4).num_params(10) == 11_178_762
  assert Architecture(1, 1).num_params(10, conv_bias=False) == 76_490
  assert Architecture(2, 4).num_params(10, conv_bias=False) == 11_173_962
  # A one-channel stem has 64 * 9 * 2 fewer weights.
  assert Architecture(2, 4).num_params(10) - Architecture(2, 4).num_params(10, in_channels=1) == 1_152


def test_architecture_is_hashable_and_validated():
  assert len({Architecture(1, 2), Architecture(1, 2), Architecture(2, 1)}) == 2
  with pytest.raises(ValueError, match='positive int'):
    Architecture(0, 1)
  with pytest.raises(ValueError, match='Unknown block type'):
    Architecture(1, 1, block='dense')


@pytest.mark.parametrize('text', ['A(1,2)', '1,2', ' A( 1 , 2 ) ', 'A(basic,1,2)'])
def test_parse_architecture(text):
  assert parse_architecture(text) == Architecture(1, 2)


def test_parse_architecture_rejects_garbage():
  with pytest.raises(ValueError, match='Cannot parse'):
    parse_architecture('resnet18')


@pytest.mark.parametrize('size, maps', [(28, (14, 7, 4, 2, 1)), (14, (7, 4, 2, 1, 1)), (8, (4, 2, 1, 1, 1)),
                                        (32, (16, 8, 4, 2, 1))])
def test_feature_map_halves_at_the_stem_and_every_later_stack(size, maps):
  assert tuple(Architecture(1, j).feature_map((size, size))[0] for j in range(1, 6)) == maps
  assert Architecture(3, 2).feature_map((size, size + 4)) == (maps[1], -(-(size + 4) // 4))


def test_the_input_bound_drops_the_right_candidates_and_says_why():
  space = SearchSpace(12, 5, min_feature_map=2).for_input((8, 8, 1))
  assert space.candidates(Architecture(1, 2)) == (Architecture(1, 2), Architecture(2, 2))  # A(1,3) leaves 1x1.
  assert space.dropped(Architecture(1, 2)) == {'A(1,3)': 'a 1x1 feature map on 8x8 inputs (the least is 2x2)'}
  assert max(a.stacks for a in space.nodes()) == 2 and len(list(space.nodes())) == 24
  with pytest.raises(ValueError, match=r'A\(2,3\) leaves a 1x1 feature map on 8x8 inputs.*use fewer stacks'):
    space.check(Architecture(2, 3))
  # The same space on Fashion-MNIST's 28x28 keeps four stacks (2x2) and drops the fifth (1x1).
  full = SearchSpace(12, 5, min_feature_map=2).for_input((28, 28, 1))
  assert Architecture(1, 4) in full and Architecture(1, 5) not in full
  assert full.dropped(Architecture(1, 4)) == {'A(1,5)': 'a 1x1 feature map on 28x28 inputs (the least is 2x2)'}
  # The paper's space (min_feature_map=1) keeps every architecture, and so does a space whose input is unknown.
  assert Architecture(1, 5) in SearchSpace(12, 5).for_input((28, 28))
  assert Architecture(1, 5) in SearchSpace(12, 5, min_feature_map=2)


def test_an_input_too_small_for_the_root_is_refused():
  with pytest.raises(ValueError, match=r'2x2 inputs leave A\(1,1\) a map under 2x2: use inputs of at least 4x4'):
    SearchSpace(min_feature_map=2).for_input((2, 2, 3))


@hypothesis.given(st.integers(2, 40), st.integers(1, 4), st.integers(1, 6), st.integers(1, 5))
def test_a_fitted_space_offers_only_architectures_that_fit(size, least, blocks, stacks):
  space = SearchSpace(6, 5, min_feature_map=least)
  hypothesis.assume(-(-size // 2) >= least)
  fitted = space.for_input((size, size))
  for arch in fitted.nodes():
    assert min(arch.feature_map((size, size))) >= least
  arch = Architecture(blocks, stacks)
  if arch in fitted:
    for other in fitted.candidates(arch) + fitted.mutations(arch):
      assert min(other.feature_map((size, size))) >= least
