/* nnc_help.h — the help texts of the nnc command (nnc_help.c). */
#ifndef NNC_HELP_H
#define NNC_HELP_H

extern const char help_main[], help_compile[], help_run[], help_check[], help_dump[], help_import[],
    help_cache[];

#endif
