package dev.trilens;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Packages follow the data, and dependencies point one way down this list: a class may use its own package and
 * those above it, never one below (by import or by a fully qualified name).
 */
class PackageLayersTest {
    static final List<String> LAYERS = List.of("data", "model", "io", "train", "interp", "report", "serve", "cli");
    private static final Pattern USE = Pattern.compile("\\bdev\\.trilens\\.(\\w+)\\.");

    @Test
    void everyDependencyPointsDownTheList() throws IOException {
        Path root = Path.of("src/main/java/dev/trilens");
        List<String> wrongWay = new ArrayList<>();
        int files = 0;
        try (Stream<Path> sources = Files.walk(root)) {
            for (Path file : (Iterable<Path>) sources.filter(p -> p.toString().endsWith(".java"))::iterator) {
                Path rel = root.relativize(file);
                if (rel.getNameCount() < 2) {
                    continue; // dev.trilens itself (TrilensException) is below every layer
                }
                String layer = rel.getName(0).toString();
                assertThat(LAYERS).as("package of %s", rel).contains(layer);
                files++;
                Matcher m = USE.matcher(Files.readString(file));
                while (m.find()) {
                    String used = m.group(1);
                    if (LAYERS.contains(used) && LAYERS.indexOf(used) > LAYERS.indexOf(layer)) {
                        wrongWay.add(rel + " uses " + used);
                    }
                }
            }
        }
        assertThat(files).as("source files found under %s", root).isGreaterThan(50);
        assertThat(wrongWay).isEmpty();
    }
}
