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
