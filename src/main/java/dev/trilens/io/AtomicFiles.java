package dev.trilens.io;

import dev.trilens.TrilensException;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.DirectoryStream;
import java.nio.file.LinkOption;
import java.security.SecureRandom;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Writes a file so that readers see either the old content or the complete new one: a crash or an error half-way
 * never leaves a truncated model behind.
 *
 * <p>Temp files are named {@code .NAME.PID-RANDOM.tmp}. Those of this process are deleted by a shutdown hook when it is
 * stopped (SIGTERM, Ctrl-C) mid-write; those of a process that no longer runs (kill -9, a power cut) are swept by the
 * next write into the same folder.
 */
public final class AtomicFiles {
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final long PID = ProcessHandle.current().pid();
    /** Our temp files and staging folders: a dot, a name, the writer's pid, a random suffix. */
    static final Pattern OURS = Pattern.compile("\\..+\\.(\\d+)-[0-9a-z]+\\.(tmp|staging)");
    /** Temp files and staging folders this process has not yet renamed or deleted. */
    private static final Set<Path> LIVE = ConcurrentHashMap.newKeySet();

    /** Set when the process is being stopped: from then on no new temp file is started. */
    private static volatile boolean stopping;

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(AtomicFiles::cleanUpOnExit, "trilens-temp-cleanup"));
    }

    /**
     * The other threads run on while shutdown hooks do: a writer may be creating a file in a staging folder as it is
     * deleted. New temp files are refused from the start, and what a writer created meanwhile goes in a second pass.
     */
    private static void cleanUpOnExit() {
        stopping = true;
        for (int pass = 0; pass < 3 && !LIVE.isEmpty(); pass++) {
            LIVE.forEach(AtomicFiles::deleteTree);
            LIVE.removeIf(p -> !Files.exists(p, LinkOption.NOFOLLOW_LINKS));
            if (!LIVE.isEmpty()) {
                try {
                    Thread.sleep(100); // let a writer caught between check and create fail on the missing folder
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    /** Like {@link java.util.function.Consumer}, but the body may throw IOException. */
    @FunctionalInterface
    public interface IOConsumer<T> {
        void accept(T value) throws IOException;
    }

    private AtomicFiles() {
    }

    /**
     * Runs body on a stream to a temp file next to target, fsyncs it and renames it over target. On any failure the
     * temp file is deleted and target is left as it was. Closing the stream in body is harmless; it is synced and
     * closed here.
     */
    public static void write(Path target, IOConsumer<OutputStream> body) {
        Path abs = target.toAbsolutePath();
        Path dir = abs.getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new TrilensException("cannot write " + target + ": folder " + dir + " does not exist");
        }
        if (Files.isDirectory(abs)) {
            throw new TrilensException("cannot write " + target + ": it is a folder, expected a file path");
        }
        sweepStale(dir);
        Path tmp = null;
        boolean done = false;
        try {
            // same folder, so the rename stays on one file system and can be atomic
            tmp = createTemp(dir, abs.getFileName().toString());
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                OutputStream out = new BufferedOutputStream(Channels.newOutputStream(ch), 1 << 16);
                body.accept(new NonClosing(out));
                out.flush();
                ch.force(true);
            }
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
            done = true;
            syncDir(dir);
        } catch (IOException e) {
            throw new TrilensException("cannot write " + target + ": " + describe(e), e);
        } finally {
            if (tmp != null) {
                if (!done) {
                    deleteTree(tmp);
                }
                LIVE.remove(tmp);
            }
        }
    }

    /** A fresh name for a temp file or staging folder beside name in dir, registered for clean-up; not created. */
    static Path claimName(Path dir, String name, String kind) {
        if (stopping) {
            throw new TrilensException("stopped before writing " + dir.resolve(name));
        }
        Path p = dir.resolve("." + name + "." + PID + "-" + Long.toUnsignedString(RANDOM.nextLong(), 36) + "." + kind);
        LIVE.add(p);
        return p;
    }

    /** Deletes p when the process is stopped before it calls {@link #release} (a signal ends no try block). */
    static void deleteOnExit(Path p) {
        LIVE.add(p);
    }

    /** Forgets a temp file or staging folder that has been renamed into place or deleted. */
    static void release(Path p) {
        LIVE.remove(p);
    }

    /**
     * Deletes the temp files and staging folders in dir that a process no longer running left behind. Only our own
     * naming pattern is touched, and only where its pid is gone, so a concurrent writer's files are safe.
     */
    static void sweepStale(Path dir) {
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(dir, ".*")) {
            for (Path p : entries) {
                Matcher m = OURS.matcher(p.getFileName().toString());
                if (m.matches()) {
                    long pid = Long.parseLong(m.group(1));
                    if (pid != PID && ProcessHandle.of(pid).filter(ProcessHandle::isAlive).isEmpty()) {
                        deleteTree(p);
                    }
                }
            }
        } catch (IOException | NumberFormatException ignored) {
            // sweeping is a courtesy: the write itself reports any real problem with the folder
        }
    }

    /** Deletes a file or a folder with everything in it, as far as it can. */
    static void deleteTree(Path p) {
        try {
            if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
                try (DirectoryStream<Path> entries = Files.newDirectoryStream(p)) {
                    for (Path e : entries) {
                        deleteTree(e);
                    }
                }
            }
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // best effort: what is left is swept by a later write, its pid being gone
        }
    }

    /**
     * An empty file with a random name beside the target. Not Files.createTempFile: that makes it 0600 whatever the
     * umask, and the rename would hand that to a report or model a user expects to share like any other output.
     */
    private static Path createTemp(Path dir, String name) throws IOException {
        for (int attempt = 0; ; attempt++) {
            Path tmp = claimName(dir, name, "tmp");
            try {
                Files.newByteChannel(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE).close();
                return tmp;
            } catch (FileAlreadyExistsException e) {
                release(tmp);
                if (attempt == 100) {
                    throw e;
                }
            } catch (IOException e) {
                release(tmp);
                throw e;
            }
        }
    }

    /** An IOException as words for a one-line message: file-system ones carry only a path as their message. */
    static String describe(IOException e) {
        if (e instanceof FileSystemException fse && fse.getReason() == null) {
            String kind = e.getClass().getSimpleName().replace("Exception", "");
            return kind.replaceAll("([a-z])([A-Z])", "$1 $2").toLowerCase() + ": " + fse.getFile();
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }

    /** Makes the rename itself durable; not every file system lets a folder be opened, so failures are ignored. */
    private static void syncDir(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | RuntimeException ignored) {
            // best effort
        }
    }

    /** Stops a body's try-with-resources (e.g. a ZipOutputStream) from closing the channel before the fsync. */
    private static final class NonClosing extends OutputStream {
        private final OutputStream out;

        NonClosing(OutputStream out) {
            this.out = out;
        }

        @Override
        public void write(int b) throws IOException {
            out.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
        }

        @Override
        public void flush() throws IOException {
            out.flush();
        }

        @Override
        public void close() throws IOException {
            out.flush();
        }
    }
}
