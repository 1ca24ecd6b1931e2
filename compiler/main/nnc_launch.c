/* nnc_launch.c — the `nnc` command's front door.  A build whose library the compile cache
 * holds (build_cache.h) is served here: the inputs hashed, the library copied, in a few
 * milliseconds.  Everything else — a miss, every other command, any usage error — is handed
 * to the compiler, `nnc-compiler` (nnc_main.c), by exec with the same arguments.  The point
 * of two programs is what this one does not load: the compiler links LLVM, whose shared
 * library alone takes 25-60 ms to map and relocate, and OpenBLAS, which starts its threads
 * when loaded; this one links libc.
 *
 * The compiler is found next to this program (a build tree), else at NNC_INSTALL_COMPILER_REL
 * from it (an installed tree: LIBEXECDIR/nnc/nnc-compiler). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_cache.h"
#include "cli.h"

#define COMPILER "nnc-compiler"

/* The directory of this program into dir[len] (no trailing slash); false when unknown. */
static bool own_dir(char *dir, size_t len) {
  ssize_t n = readlink("/proc/self/exe", dir, len - 1);
  if (n <= 0) return false;
  dir[n] = '\0';
  char *slash = strrchr(dir, '/');
  if (!slash) return false;
  *slash = '\0';
  return true;
}

/* An installed nnc (PREFIX/BINDIR/nnc) links the libraries it writes with
 * PREFIX/LIBDIR/libnnc_support.a wherever the tree was installed or moved to (cmake --install
 * --prefix P): set $NNC_SUPPORT_LIB, which the build key and the compiler read, unless the
 * user set it. */
static void use_installed_support_lib(const char *dir) {
#ifdef NNC_INSTALL_SUPPORT_REL
  char lib[PATH_MAX + 256], real[PATH_MAX];
  const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
  if (getenv("NNC_SUPPORT_LIB") || strcmp(base, NNC_INSTALL_BINDIR_NAME) != 0) return; /* a build tree */
  snprintf(lib, sizeof lib, "%s/%s", dir, NNC_INSTALL_SUPPORT_REL);
  if (realpath(lib, real) && access(real, R_OK) == 0) setenv("NNC_SUPPORT_LIB", real, 0);
#else
  (void)dir;
#endif
}

/* 0 when the command line is a build the cache holds and its library is written; 1 when it is
 * not; -1 when the library cannot be written (the message printed). */
static int serve_from_cache(int argc, char **argv) {
  char err[PATH_MAX + 256];
  CompileArgs a;
  Cache cache;
  CacheKey key;
  if (argc < 2 || cli_command(argv[1])) return 1;
  cli_quiet = true;
  int rc = cli_parse_compile(argc, argv, &a);
  cli_quiet = false;
  if (rc != CLI_PARSED) return 1;
  cache_open(&cache);
  BuildInputs in = {a.opt.header_path ? BUILD_LIBRARY_HEADER : BUILD_LIBRARY, a.in, a.opt.weights_path,
                    a.opt.defines, a.opt.ndefines};
  if (!cache.on || !build_key(&in, &key)) return 1;
  rc = build_cache_fetch(&cache, &key, a.so, a.opt.header_path, err, sizeof err);
  if (rc < 0) user_error("nnc: error: %s", err);
  return rc;
}

int main(int argc, char **argv) {
  char dir[PATH_MAX], compiler[PATH_MAX + 64];
  bool located = own_dir(dir, sizeof dir);
  if (located) use_installed_support_lib(dir);
  int served = serve_from_cache(argc, argv);
  if (served <= 0) return served ? EXIT_USER : 0;
  if (!located) return user_error("nnc: error: cannot find the directory of this program (/proc/self/exe)");
  snprintf(compiler, sizeof compiler, "%s/" COMPILER, dir);
#ifdef NNC_INSTALL_COMPILER_REL
  if (access(compiler, X_OK) != 0) snprintf(compiler, sizeof compiler, "%s/%s", dir, NNC_INSTALL_COMPILER_REL);
#endif
  execv(compiler, argv);
  return user_error("nnc: error: cannot run the compiler %s: %s (nnc runs " COMPILER " from its own "
                    "directory, or from LIBEXECDIR/nnc in an installed tree)", compiler, strerror(errno));
}
