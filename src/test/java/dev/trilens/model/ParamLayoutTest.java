package dev.trilens.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.TrilensException;
import java.util.List;
import org.junit.jupiter.api.Test;

class ParamLayoutTest {

    @Test
    void countsParametersWithoutBuildingTheLayout() {
        for (ModelConfig cfg : List.of(ModelConfig.arena(), ModelConfig.arena().withDMlp(0),
                new ModelConfig(11, 7, 8, 2, 2, 4, 12, true), new ModelConfig(13, 5, 6, 3, 3, 2, 0, true))) {
            assertThat(ParamLayout.count(cfg)).as(cfg.toString()).isEqualTo(new ParamLayout(cfg).totalSize());
        }
    }

    @Test
    void refusesConfigsTooLargeForOneArrayBeforeLooping() {
        ModelConfig layers = new ModelConfig(75, 50, 32, 2_000_000_000, 1, 16, 20, false);
        assertThatThrownBy(() -> new ParamLayout(layers)).isInstanceOf(TrilensException.class)
                .hasMessage("n_layers is 2000000000, expected at most 10000");
        ModelConfig wide = new ModelConfig(2_000_000_000, 50, 2_000_000_000, 1, 2_000_000_000, 2_000_000_000, 20, false);
        assertThat(ParamLayout.count(wide)).isEqualTo(Long.MAX_VALUE);
        assertThatThrownBy(() -> new ParamLayout(wide)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("a model with d_vocab=2000000000 ")
                .hasMessageEndingWith(" has over 2^63 parameters, expected at most 2147483639");
        ModelConfig big = new ModelConfig(75, 50, 32, 10_000, 64, 64, 20, false);
        assertThatThrownBy(() -> new ParamLayout(big)).isInstanceOf(TrilensException.class)
                .hasMessageEndingWith(" has " + ParamLayout.count(big) + " parameters, expected at most 2147483639");
    }
}
