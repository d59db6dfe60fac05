/* TEMPORARY (until the configuration's sink sections land): accessors the core uses. */
#ifndef RELAY_CONFIG_COMPAT_H
#define RELAY_CONFIG_COMPAT_H
#include <stdbool.h>
#include <stdlib.h>
#include "config.h"
static inline const char *relay_config_sink_name(const struct relay_config *cfg)
{
    return cfg->sink == RELAY_SINK_STDOUT ? "stdout" : "kafka";
}
static inline const char *compat_dl_schema(const struct relay_config *cfg)
{
    (void)cfg;
    return "";
}
static inline const char *compat_dl_table(const struct relay_config *cfg)
{
    (void)cfg;
    return "";
}
static inline bool compat_on_bad_event_dead_letter(const struct relay_config *cfg, bool have_dest)
{
    (void)cfg;
    return have_dest;
}
#endif
