"""swap_modules: every module of one type replaced in place, nested ones too, none twice."""

from torch import nn

from dynbench.models.swap import swap_modules


def test_every_module_of_the_type_is_replaced_where_it_sits():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 5, 1), nn.Conv2d(5, 6, 1))
    )
    made = []

    def make(conv: nn.Conv2d) -> nn.Module:
        made.append((conv.in_channels, conv.out_channels))
        return nn.Identity()

    assert swap_modules(model, nn.Conv2d, make) == 3
    assert made == [(3, 4), (4, 5), (5, 6)]
    assert [type(m) for m in model.modules()].count(nn.Identity) == 3
    assert not any(isinstance(m, nn.Conv2d) for m in model.modules())
    assert isinstance(model[1], nn.ReLU)


def test_a_replacement_holding_the_type_is_not_visited_again():
    model = nn.Sequential(nn.Linear(2, 2))
    assert swap_modules(model, nn.Linear, lambda lin: nn.Sequential(lin, nn.Linear(2, 2))) == 1
    assert len([m for m in model.modules() if isinstance(m, nn.Linear)]) == 2
    assert swap_modules(nn.Sequential(nn.ReLU()), nn.Linear, lambda m: m) == 0
