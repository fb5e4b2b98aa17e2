package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OutputSetTest {
    @TempDir
    Path dir;

    @Test
    void filesAppearOnCommitBesideTheEarlierSetsFiles() throws IOException {
        Files.createDirectories(dir.resolve("figures"));
        Files.writeString(dir.resolve("figures/old.png"), "kept");
        Files.writeString(dir.resolve("analysis.json"), "old");
        try (OutputSet set = OutputSet.begin(dir, "analysis")) {
            Files.writeString(set.path("analysis.json"), "new");
            Files.createDirectories(set.path("figures"));
            Files.writeString(set.path("figures/new.png"), "new");
            assertThat(set.target("figures/new.png")).isEqualTo(dir.resolve("figures/new.png"));
            assertThat(dir.resolve("analysis.json")).hasContent("old");
            assertThat(dir.resolve("figures/new.png")).doesNotExist();
            assertThat(set.committed()).isFalse();
            set.commit();
            assertThat(set.committed()).isTrue();
        }
        assertThat(dir.resolve("analysis.json")).hasContent("new");
        assertThat(dir.resolve("figures/new.png")).hasContent("new");
        assertThat(dir.resolve("figures/old.png")).hasContent("kept");
        try (Stream<Path> s = Files.list(dir)) {
            assertThat(s.map(p -> p.getFileName().toString()).sorted()).as("no staging folder left")
                    .containsExactly("analysis.json", "figures");
        }
    }
}
