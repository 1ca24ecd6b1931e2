/* print.c — the loop IR as text: `nnc dump --stage=loops`, and the canonical key of a kernel
 * (buffers renumbered by first use, exact constants) that codegen uses to emit structurally
 * equal kernels once.  Shared subexpressions print as %id after their first use: a print
 * marks the nodes it numbers (Lx.print_gen) and unmarks them when the kernel is done, so it
 * leaves the IR as it found it and needs no counter shared between prints. */
#include <stdlib.h>
#include "loopir.h"

typedef struct Printer {
  FILE *out;
  const Ls *par, *par_inner; /* the kernel's loops that run split among threads */
  int next_id;        /* shared subexpressions print as %id after their first use */
  Lx **numbered;      /* [nnumbered] the nodes given an id so far (print_gen set) */
  int nnumbered, capnumbered;
  const LEntry *le;
  int *rename;      /* entry buffer -> local number, or NULL */
  int nlocal;
  bool canonical;
} Printer;

static void print_buf(Printer *p, int b) {
  if (p->rename) {
    if (p->rename[b] < 0) p->rename[b] = p->nlocal++;
    b = p->rename[b];
  }
  fprintf(p->out, "b%d", b);
}

/* Give compound node x the next id; print_kernel unmarks it at the end. */
static void number(Printer *p, Lx *x) {
  if (p->nnumbered == p->capnumbered) {
    p->capnumbered = p->capnumbered ? 2 * p->capnumbered : 256;
    Lx **t = realloc(p->numbered, p->capnumbered * sizeof *p->numbered);
    if (!t) {
      free(p->numbered);
      p->numbered = NULL;
      nnc_out_of_memory("realloc to %zu bytes in the loop printer", p->capnumbered * sizeof *t);
    }
    p->numbered = t;
  }
  p->numbered[p->nnumbered++] = x;
  x->print_gen = 1;
  x->print_id = p->next_id++;
}

static void print_lx(Printer *p, Lx *x) {
  FILE *out = p->out;
  bool compound = x->k == LX_IBIN || x->k == LX_LOAD || x->k == LX_OP || x->k == LX_SELECT ||
                  x->k == LX_ITOF || x->k == LX_FTOI || x->k == LX_LOADI;
  if (compound) {
    if (x->print_gen) {
      fprintf(out, "%%%d", x->print_id);
      return;
    }
    number(p, x);
    fprintf(out, "%%%d=", x->print_id);
  }
  switch (x->k) {
  case LX_F: fprintf(out, p->canonical ? "%a" : "%g", x->f[0]); break;
  case LX_I: fprintf(out, "%lld", (long long)x->c); break;
  case LX_VAR: fprintf(out, "i%d", x->var); break;
  case LX_CHUNK: fprintf(out, "chunk"); break;
  case LX_SYM: fprintf(out, "%lld*sym%x", (long long)x->c, x->syms); break;
  case LX_IBIN:
    fprintf(out, "(");
    print_lx(p, x->a[0]);
    fprintf(out, " %c ", x->op);
    print_lx(p, x->a[1]);
    fprintf(out, ")");
    break;
  case LX_LOAD:
    print_buf(p, x->buf);
    if (p->canonical && p->le->bufs[x->buf].dtype == DT_I64) fprintf(out, ":i64");
    fprintf(out, "[");
    print_lx(p, x->a[0]);
    fprintf(out, "]");
    break;
  case LX_OP:
    fprintf(out, "%s(", op_info[x->op].name);
    for (int k = 0; k < op_info[x->op].arity; k++) {
      if (k) fprintf(out, ", ");
      print_lx(p, x->a[k]);
    }
    if (p->canonical) fprintf(out, "; %a %a", x->f[0], x->f[1]);
    fprintf(out, ")");
    break;
  case LX_SELECT:
    fprintf(out, "select(");
    for (int k = 0; k < 3; k++) {
      if (k) fprintf(out, ", ");
      print_lx(p, x->a[k]);
    }
    fprintf(out, ")");
    break;
  case LX_ACC: fprintf(out, "acc%d", x->acc); break;
  case LX_ITOF: fprintf(out, "float("); print_lx(p, x->a[0]); fprintf(out, ")"); break;
  case LX_FTOI: fprintf(out, "int("); print_lx(p, x->a[0]); fprintf(out, ")"); break;
  case LX_LOADI:
    print_buf(p, x->buf);
    fprintf(out, ":i64raw[");
    print_lx(p, x->a[0]);
    fprintf(out, "]");
    break;
  }
}

/* buf[off] */
static void print_ref(Printer *p, int buf, Lx *off) {
  print_buf(p, buf);
  fprintf(p->out, "[");
  print_lx(p, off);
  fprintf(p->out, "]");
}

static void print_ls(Printer *p, const Ls *s, int depth) {
  FILE *out = p->out;
  fprintf(out, "%*s", 2 * depth, "");
  switch (s->k) {
  case LS_BLOCK:
    fprintf(out, "{\n");
    for (int i = 0; i < s->nbody; i++) print_ls(p, s->body[i], depth + 1);
    fprintf(out, "%*s}\n", 2 * depth, "");
    break;
  case LS_LOOP:
    fprintf(out, "%s%sfor i%d in ", s == p->par || s == p->par_inner ? "parallel " : s->split_inner ? "split " : "",
            s->vector_row ? "vector " : "", s->var);
    print_lx(p, s->lo);
    fprintf(out, "..");
    print_lx(p, s->hi);
    if (!(s->step->k == LX_I && s->step->c == 1)) {
      fprintf(out, " step ");
      print_lx(p, s->step);
    }
    fprintf(out, " {\n");
    for (int i = 0; i < s->nbody; i++) print_ls(p, s->body[i], depth + 1);
    fprintf(out, "%*s}\n", 2 * depth, "");
    break;
  case LS_STORE:
    print_ref(p, s->buf, s->idx);
    fprintf(out, " = ");
    print_lx(p, s->val);
    fprintf(out, "\n");
    break;
  case LS_EVAL:
    fprintf(out, "eval ");
    print_lx(p, s->val);
    fprintf(out, "\n");
    break;
  case LS_ACC_INIT: fprintf(out, "acc%d = %s\n", s->acc, s->rop == OP_SUM ? "0" : "-inf"); break;
  case LS_ACC_UPDATE:
    fprintf(out, "acc%d = %s(acc%d, ", s->acc, s->rop == OP_SUM ? "add" : "max", s->acc);
    print_lx(p, s->val);
    fprintf(out, ")\n");
    break;
  case LS_SCAN: {
    const ScanInfo *sc = s->sc.info;
    int nb = 4 * sc->ncarried + sc->ncaptured + sc->nsteps + 2;
    fprintf(out, "scan %s steps=", sc->body->name);
    print_lx(p, s->sc.steps);
    fprintf(out, "%s bufs", sc->reverse ? " reverse" : "");
    for (int i = 0; i < nb; i++) {
      fprintf(out, " ");
      if (s->sc.bufs[i] < 0) fprintf(out, "-");
      else print_buf(p, s->sc.bufs[i]);
    }
    for (int i = 0; i < sc->body->nout; i++) {
      fprintf(out, " n%d=", i);
      print_lx(p, s->sc.numel[i]);
    }
    fprintf(out, "\n");
    break;
  }
  case LS_CONV: {
    fprintf(out, "conv ");
    print_ref(p, s->cv.y, s->cv.y_off);
    fprintf(out, " = ");
    print_ref(p, s->cv.w, s->cv.w_off);
    fprintf(out, " * ");
    print_ref(p, s->cv.x, s->cv.x_off);
    fprintf(out, " cout=%lld cin=%lld oh=%lld ow=%lld xplane=%lld xrow=%lld lanes=%d tile=%dx%d taps=",
            (long long)s->cv.cout, (long long)s->cv.cin, (long long)s->cv.oh, (long long)s->cv.ow,
            (long long)s->cv.xplane, (long long)s->cv.xrow, s->cv.lanes, s->cv.tile_co, s->cv.tile_vec);
    if (s->cv.size[0]) { /* symbolic sizes: taps as plane:row:col */
      for (int64_t t = 0; t < s->cv.ntaps; t++)
        fprintf(out, "%s%lld:%lld:%lld", t ? "," : "", (long long)s->cv.tap[3 * t], (long long)s->cv.tap[3 * t + 1],
                (long long)s->cv.tap[3 * t + 2]);
      static const char *const names[4] = {"oh", "ow", "hq", "wq"};
      for (int i = 0; i < 4; i++) {
        fprintf(out, " %s=", names[i]);
        print_lx(p, s->cv.size[i]);
      }
      fprintf(out, " planes=%lld", (long long)s->cv.nplanes);
    } else {
      for (int64_t t = 0; t < s->cv.ntaps; t++) fprintf(out, "%s%lld", t ? "," : "", (long long)s->cv.tap[t]);
    }
    if (s->cv.rows) {
      fprintf(out, " rows=");
      print_lx(p, s->cv.rows);
    }
    if (s->cv.tight) fprintf(out, " tight");
    if (s->cv.epi) {
      fprintf(out, " epilogue(i%d, i%d)=", s->cv.epi_ch, s->cv.epi_pos);
      print_lx(p, s->cv.epi);
    }
    if (s->cv.parts > 1) fprintf(out, " parts=%d%s", s->cv.parts, s->cv.part_major ? " part-major" : "");
    if (s->cv.add >= 0) {
      fprintf(out, " plus ");
      print_ref(p, s->cv.add, s->cv.add_off);
      fprintf(out, " ld=");
      print_lx(p, s->cv.add_ld);
    }
    if (s->cv.nbatch > 1)
      fprintf(out, " batch=%lld strides=%lld,%lld,%lld", (long long)s->cv.nbatch, (long long)s->cv.x_bstride,
              (long long)s->cv.w_bstride, (long long)s->cv.y_bstride);
    for (int i = 0; i < 2 && s->cv.bstride[0]; i++) {
      fprintf(out, i ? "," : " run-time strides=");
      print_lx(p, s->cv.bstride[i]);
    }
    fprintf(out, "\n");
    break;
  }
  case LS_CALL: {
    fprintf(out, "call %s(", s->call.fn);
    for (int i = 0; i < s->call.nbufs; i++) {
      fprintf(out, "%s", i ? ", " : "");
      if (s->call.bufs[i] < 0) fprintf(out, "-");
      else if (s->call.offs[i]) print_ref(p, s->call.bufs[i], s->call.offs[i]);
      else print_buf(p, s->call.bufs[i]);
    }
    fprintf(out, ") ints=");
    for (int i = 0; i < s->call.nints; i++) {
      fprintf(out, "%s", i ? "," : "");
      print_lx(p, s->call.ints[i]);
    }
    fprintf(out, " f=%.9g\n", s->call.f);
    break;
  }
  case LS_GEMM: {
    fprintf(out, "sgemm%s%s ", s->g.ta ? " transA" : "", s->g.tb ? " transB" : "");
    print_ref(p, s->g.c, s->g.c_off);
    fprintf(out, " = ");
    print_ref(p, s->g.a, s->g.a_off);
    fprintf(out, " x ");
    print_ref(p, s->g.b, s->g.b_off);
    const char *names[] = {"m", "n", "k", "lda", "ldb", "ldc"};
    Lx *vals[] = {s->g.m, s->g.n, s->g.k, s->g.lda, s->g.ldb, s->g.ldc};
    for (int i = 0; i < 6; i++) {
      fprintf(out, " %s=", names[i]);
      print_lx(p, vals[i]);
    }
    fprintf(out, "\n");
    break;
  }
  }
}

/* Print a kernel's body, then unmark the nodes it numbered. */
static void print_kernel(Printer *p, const Ls *body, int depth) {
  print_ls(p, body, depth);
  for (int i = 0; i < p->nnumbered; i++) p->numbered[i]->print_gen = 0;
  free(p->numbered);
  p->numbered = NULL;
  p->nnumbered = p->capnumbered = 0;
}

char *loopir_kernel_key(const LEntry *le, const LKernel *k, int *rename, int *nlocal) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  for (int i = 0; i < le->nbufs; i++) rename[i] = -1;
  Printer p = {.out = f, .le = le, .rename = rename, .canonical = true, .par = k->par, .par_inner = k->par_inner};
  print_kernel(&p, k->body, 0);
  fclose(f);
  *nlocal = p.nlocal;
  return buf;
}

void loopir_dump(FILE *out, const Model *m, const LEntry *le) {
  static const char *const bk[] = {"arg", "weight", "slot", "const"};
  fprintf(out, "entry %s\n", le->e->name);
  for (int i = 0; i < le->nbufs; i++) {
    const LBuf *b = &le->bufs[i];
    fprintf(out, "  b%d = %s", i, bk[b->k]);
    if (b->k == LB_ARG || b->k == LB_SLOT) fprintf(out, " %d", b->index);
    if (b->k == LB_WEIGHT) fprintf(out, " +%llu", (unsigned long long)b->offset);
    if (b->k == LB_CONST) fprintf(out, " [%lld]", (long long)b->n);
    if (b->dtype == DT_I64) fprintf(out, " i64");
    fprintf(out, "\n");
  }
  for (int k = 0; k < le->nkernels; k++) {
    Printer p = {.out = out, .le = le, .par = le->kernels[k].par, .par_inner = le->kernels[k].par_inner};
    fprintf(out, "kernel %s\n", le->kernels[k].name);
    print_kernel(&p, le->kernels[k].body, 1);
  }
}
