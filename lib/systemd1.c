/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "systemd1.h"
