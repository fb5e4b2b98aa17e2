package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Pieces of the explanation's wording on inputs written by hand. */
class ExplanationPartsTest {

    @Test
    void aNegativeRecoveredShareIsSaidInWords() {
        assertThat(Explanation.recovered("loss", -0.93, 4.4631, 4.3151))
                .isEqualTo("does worse than the baseline on the loss (4.4631 against 4.3151)");
        assertThat(Explanation.recovered("loss", 0.952, 4.1643, 4.3151))
                .isEqualTo("recovers 95.2% of the loss (4.1643 against the baseline's 4.3151)");
    }
}
