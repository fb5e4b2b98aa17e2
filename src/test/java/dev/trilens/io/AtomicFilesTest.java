package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.trilens.TrilensException;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AtomicFilesTest {

    @TempDir
    Path dir;

    @Test
    void writesAndReplaces() throws IOException {
        Path target = dir.resolve("out.bin");
        AtomicFiles.write(target, out -> out.write(new byte[] {1, 2, 3}));
        assertThat(target).hasBinaryContent(new byte[] {1, 2, 3});
        AtomicFiles.write(target, out -> {
            out.write(9);
            out.close(); // harmless: the file is synced and closed by AtomicFiles
        });
        assertThat(target).hasBinaryContent(new byte[] {9});
        assertThat(Files.list(dir)).containsExactly(target);
    }

    /** The umask decides, as for any file the user creates: compared with one made by Files.createFile. */
    @Test
    void writtenFilesGetTheUmasksPermissions() throws IOException {
        assumeTrue(dir.getFileSystem().supportedFileAttributeViews().contains("posix"), "needs POSIX permissions");
        Path reference = Files.createFile(dir.resolve("reference"));
        Path target = dir.resolve("report.html");
        AtomicFiles.write(target, out -> out.write(1));
        assertThat(Files.getPosixFilePermissions(target)).isEqualTo(Files.getPosixFilePermissions(reference));
        Files.delete(reference);
        assertThat(Files.list(dir)).containsExactly(target);
    }

    @Test
    void failureLeavesNoTargetAndNoTempFile() throws IOException {
        Path target = dir.resolve("new.bin");
        assertThatThrownBy(() -> AtomicFiles.write(target, out -> {
            out.write(new byte[1000]);
            throw new IOException("disk full");
        })).isInstanceOf(TrilensException.class).hasMessage("cannot write " + target + ": disk full");
        assertThat(target).doesNotExist();
        assertThat(Files.list(dir)).isEmpty();

        Path existing = Files.write(dir.resolve("old.bin"), new byte[] {7});
        assertThatThrownBy(() -> AtomicFiles.write(existing, out -> {
            out.write(1);
            throw new IllegalStateException("bug");
        })).isInstanceOf(IllegalStateException.class);
        assertThat(existing).hasBinaryContent(new byte[] {7});
        assertThat(Files.list(dir)).containsExactly(existing);
    }

    @Test
    void describesFileSystemErrorsInWords() {
        // file-system exceptions carry only a path as their message: their kind becomes the words
        assertThat(AtomicFiles.describe(new NoSuchFileException("/a/b"))).isEqualTo("no such file: /a/b");
        assertThat(AtomicFiles.describe(new AccessDeniedException("/x"))).isEqualTo("access denied: /x");
        assertThat(AtomicFiles.describe(new FileSystemException("/y", null, "Read-only file system")))
                .isEqualTo("/y: Read-only file system");
        assertThat(AtomicFiles.describe(new IOException("disk full"))).isEqualTo("disk full");
        assertThat(AtomicFiles.describe(new IOException())).isEqualTo("IOException");
    }

    @Test
    void missingFolderIsAUserError() {
        Path target = dir.resolve("no/such/folder/m.pt");
        assertThatThrownBy(() -> AtomicFiles.write(target, out -> out.write(1)))
                .isInstanceOf(TrilensException.class)
                .hasMessage("cannot write " + target + ": folder " + target.getParent() + " does not exist");
        assertThatThrownBy(() -> AtomicFiles.write(dir, out -> out.write(1)))
                .isInstanceOf(TrilensException.class).hasMessageContaining("it is a folder");
    }
}
