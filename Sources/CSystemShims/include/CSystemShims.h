#ifndef SLIPWAY_CSYSTEMSHIMS_H
#define SLIPWAY_CSYSTEMSHIMS_H

/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34+) is declared only
   under _GNU_SOURCE, which Swift's Glibc module does not define: the child
   closes every descriptor from `from` up, after the earlier file actions.
   `actions` is a posix_spawn_file_actions_t *; void here so that this header
   does not bring its own copy of <spawn.h>'s types into Swift. */
int slipway_spawn_closefrom(void *actions, int from);

#endif
