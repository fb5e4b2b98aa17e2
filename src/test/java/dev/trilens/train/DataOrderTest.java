package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.data.TorchGenerator;
import dev.trilens.data.TrigramDataset;
import java.util.Arrays;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * DataOrder against a real torch.utils.data pipeline. The expected values were printed by PyTorch 1.13.1 running
 * random_split(TensorDataset(torch.arange(n)), [n_train, n_val]) and DataLoader(train, batch_size, shuffle=True)
 * after the stated seeding; TorchParityTest compares whole epochs wherever torch is installed.
 */
class DataOrderTest {

    @Test
    void smallSplitAndTwoEpochsMatchTorch() {
        // torch.manual_seed(40); random_split of 1050 into [1000, 50]; DataLoader(batch_size=64, shuffle=True)
        DataOrder order = new DataOrder(new TorchGenerator(40), 1000, 50);
        int[] val = order.validationIndices();
        assertThat(Arrays.copyOf(val, 4)).containsExactly(125, 861, 274, 678);
        assertThat(Arrays.copyOfRange(val, 48, 50)).containsExactly(272, 1025);
        int[] e1 = order.epoch(1), e2 = order.epoch(2);
        assertThat(Arrays.copyOf(e1, 6)).containsExactly(661, 863, 261, 444, 1019, 955);
        assertThat(Arrays.copyOfRange(e1, 997, 1000)).containsExactly(1020, 957, 393);
        assertThat(Arrays.copyOf(e2, 6)).containsExactly(120, 19, 849, 966, 73, 975);
        assertThat(Arrays.copyOfRange(e2, 997, 1000)).containsExactly(978, 213, 193);
        // every epoch is a permutation of the training subset, which with validation covers the dataset once
        assertThat(e1).containsExactlyInAnyOrder(order.trainIndices());
        int[] both = IntStream.concat(Arrays.stream(order.trainIndices()), Arrays.stream(val)).toArray();
        assertThat(both).containsExactlyInAnyOrder(IntStream.range(0, 1050).toArray());
    }

    @Test
    void challengeDataOrderMatchesTorch() {
        // BigramDataset(75, 50, 0.05, seed=40) of 105,000 sequences drawn with torch's global generator, which then
        // draws random_split(dataset, [100000, 5000]) and DataLoader(train, batch_size=512, shuffle=True)
        TrigramDataset ds = TrigramDataset.generate(75, 50, 0.05, 40, 105_000);
        DataOrder order = DataOrder.of(ds, 100_000, 5_000);
        int[] train = order.trainIndices(), val = order.validationIndices();
        assertThat(Arrays.copyOf(train, 5)).containsExactly(97736, 11569, 98114, 40969, 10646);
        assertThat(Arrays.copyOfRange(train, 99_997, 100_000)).containsExactly(36784, 68455, 77864);
        assertThat(Arrays.copyOf(val, 5)).containsExactly(69728, 34414, 80162, 56648, 66384);
        assertThat(Arrays.copyOfRange(val, 4_997, 5_000)).containsExactly(63363, 71871, 42191);
        int[] e1 = order.epoch(1);
        assertThat(Arrays.copyOf(e1, 5)).containsExactly(3854, 11751, 35227, 61194, 61865);
        assertThat(Arrays.copyOfRange(e1, 99_997, 100_000)).containsExactly(80600, 93423, 96322);
        int[] e2 = order.epoch(2);
        assertThat(Arrays.copyOf(e2, 5)).containsExactly(75210, 58096, 50166, 16491, 16167);
        assertThat(Arrays.copyOfRange(e2, 99_997, 100_000)).containsExactly(10225, 65654, 42599);
        assertThat(Arrays.copyOf(order.epoch(3), 5)).containsExactly(35917, 72607, 11745, 34825, 91209);
        // asked for directly, as a resumed run does: the skipped epochs' seeds are replayed
        DataOrder resumed = DataOrder.of(ds, 100_000, 5_000);
        assertThat(Arrays.copyOf(resumed.epoch(50), 5)).containsExactly(54423, 88793, 29683, 71623, 19843);
        assertThat(Arrays.copyOf(resumed.epoch(100), 5)).containsExactly(84904, 66488, 104808, 74150, 57189);
    }

    @Test
    void aSingleTrainingSequenceAndNoValidationAreASplit() {
        // random_split(range(n), [n, 0]) is randperm(n) with nothing left over
        DataOrder one = new DataOrder(new TorchGenerator(40), 1, 0);
        assertThat(one.trainIndices()).containsExactly(0);
        assertThat(one.validationIndices()).isEmpty();
        assertThat(one.epoch(1)).containsExactly(0);
        // g.manual_seed(40); torch.randperm(5, generator=g): the whole split, all of it for training
        assertThat(new DataOrder(new TorchGenerator(40), 5, 0).trainIndices()).containsExactly(3, 4, 1, 2, 0);
        assertThatThrownBy(() -> new DataOrder(new TorchGenerator(40), 0, 5)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("expected n_train >= 1 and n_val >= 0, got 0 and 5");
        assertThatThrownBy(() -> new DataOrder(new TorchGenerator(40), 5, -1))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void epochsOnlyMoveForward() {
        DataOrder order = new DataOrder(new TorchGenerator(1), 10, 2);
        int[] e3 = order.epoch(3);
        assertThat(new DataOrder(new TorchGenerator(1), 10, 2).epoch(3)).isEqualTo(e3);
        assertThatThrownBy(() -> order.epoch(3)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("epoch 3 asked for after epoch 3");
        assertThatThrownBy(() -> DataOrder.of(TrigramDataset.generate(12, 10, 0.1, 5, 20), 15, 4))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("got 20");
    }
}
