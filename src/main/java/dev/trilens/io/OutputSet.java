package dev.trilens.io;

import dev.trilens.TrilensException;
import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Files that belong together (analysis.json, its figures and the report that embeds them) written as a set: each is
 * written under a staging folder inside the output folder, and only when all of them are complete are they renamed
 * into place. A full disk, an error or a kill half-way leaves the previous set as it was and no mix of old and new;
 * renames within one folder need no space, so the last step does not fail for lack of it.
 */
public final class OutputSet implements AutoCloseable {
    private final Path dir;
    private final Path staging;
    private boolean committed;

    private OutputSet(Path dir, Path staging) {
        this.dir = dir;
        this.staging = staging;
    }

    /** Starts a set in dir (which must exist), sweeping the staging folders of processes that died half-way. */
    public static OutputSet begin(Path dir, String name) {
        AtomicFiles.sweepStale(dir);
        Path staging = AtomicFiles.claimName(dir, name, "staging");
        try {
            Files.createDirectory(staging);
        } catch (IOException e) {
            AtomicFiles.release(staging);
            throw new TrilensException("cannot write to output folder " + dir + ": " + AtomicFiles.describe(e), e);
        }
        return new OutputSet(dir, staging);
    }

    /** Where to write the file (or folder) that will end up at dir/relative. */
    public Path path(String relative) {
        return staging.resolve(relative);
    }

    /** The final place of dir/relative, for messages. */
    public Path target(String relative) {
        return dir.resolve(relative);
    }

    /** Renames every staged file into its place (folders merge: files of an earlier set not written again stay). */
    public void commit() {
        try {
            List<Path> files = new ArrayList<>();
            try (Stream<Path> walk = Files.walk(staging)) {
                walk.filter(Files::isRegularFile).forEach(files::add);
            }
            for (Path f : files) {
                Path to = dir.resolve(staging.relativize(f).toString());
                Files.createDirectories(to.getParent());
                try {
                    Files.move(f, to, StandardCopyOption.ATOMIC_MOVE);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(f, to, StandardCopyOption.REPLACE_EXISTING);
                }
            }
            committed = true;
        } catch (IOException e) {
            throw new TrilensException("cannot move the new files into " + dir + ": " + AtomicFiles.describe(e), e);
        }
    }

    /** Removes the staging folder: empty after a commit, the abandoned set otherwise. */
    @Override
    public void close() {
        AtomicFiles.deleteTree(staging);
        AtomicFiles.release(staging);
    }

    public boolean committed() {
        return committed;
    }
}
