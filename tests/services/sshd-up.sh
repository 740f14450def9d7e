#!/usr/bin/env bash
# Start the private OpenSSH servers that flowlib's channel tests log in to. Loopback only.
#
#   127.0.0.1:$SSHD_PORT      (2222)  public-key logins for $SSHD_USER (flowtest) and root
#   127.0.0.1:$SSHD_KBD_PORT  (2223)  keyboard-interactive (PAM password) logins for
#                                     $SSHD_KBD_USER (flowpass)
#
# Needs root (it installs openssh-server if missing, creates the two users and starts sshd).
# Idempotent: a server that an earlier run started and whose configuration has not changed
# is left running; otherwise only the server recorded in our own pid file is restarted.
#
# Leaves in $SSHD_DIR (/tmp/flowlib-sshd):
#   id_ed25519, id_ed25519.pub  client key of $SSHD_USER and root (no passphrase)
#   known_hosts                 host key lines for [127.0.0.1]:PORT and [localhost]:PORT, both ports
#   kbd_password                the password of $SSHD_KBD_USER (mode 0600)
#   sshd_config, sshd.pid, sshd.log, sshd_kbd_config, sshd_kbd.pid, sshd_kbd.log
# Stop with tests/services/sshd-down.sh.
set -euo pipefail

PORT="${SSHD_PORT:-2222}"
KBD_PORT="${SSHD_KBD_PORT:-2223}"
TUSER="${SSHD_USER:-flowtest}"
KUSER="${SSHD_KBD_USER:-flowpass}"
DIR="${SSHD_DIR:-/tmp/flowlib-sshd}"
SSHD=/usr/sbin/sshd   # sshd re-executes itself and refuses to start from a relative path
export DEBIAN_FRONTEND=noninteractive

die() {
  echo "sshd-up: $*" >&2
  for log in "$DIR/sshd.log" "$DIR/sshd_kbd.log"; do
    [ -s "$log" ] && { echo "--- last lines of $log" >&2; tail -n 30 "$log" >&2; }
  done
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages, creates users and starts sshd)"

# Several test sessions may call this at once: one at a time (the later ones find it running).
exec 9>"${DIR%/}.lock"
flock -w 120 9 || die "another sshd-up.sh/sshd-down.sh holds ${DIR%/}.lock"

# A zombie passes `kill -0`, and PID 1 on these machines reaps lazily: look at the state instead.
alive() { local s; s="$(ps -o stat= -p "$1" 2>/dev/null)" && [ -n "$s" ] && [ "${s#Z}" = "$s" ]; }

stop_pidfile() {
  local pidfile="$1" pid
  [ -s "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if alive "$pid"; then
    kill "$pid" || true
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.05; done
    alive "$pid" && die "sshd pid $pid from $pidfile did not stop"
  fi
  rm -f "$pidfile"
}

# 1. The package. apt-get update only when the package cannot be found in the lists we have.
# Another apt run may hold the dpkg lock for a while: wait for it (bounded) instead of failing.
APT=(apt-get -o DPkg::Lock::Timeout=120 -y -qq)
if [ ! -x "$SSHD" ]; then
  if ! "${APT[@]}" install --no-install-recommends openssh-server >/dev/null 2>&1; then
    "${APT[@]}" update || die "apt-get update failed"
    "${APT[@]}" install --no-install-recommends openssh-server >/dev/null || die "cannot install openssh-server"
  fi
fi
[ -x "$SSHD" ] || die "$SSHD missing after installing openssh-server"

install -d -m 0700 "$DIR"
install -d -m 0755 /run/sshd   # privilege-separation directory; sshd will not start without it

# 2. Keys, generated once: the server's host key and the client key of the test users.
[ -s "$DIR/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C flowlib-test-host -f "$DIR/ssh_host_ed25519_key"
[ -s "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C flowlib-test-client -f "$DIR/id_ed25519"

# 3. Users. useradd leaves the password field '!' (locked), and sshd with UsePAM no refuses a
# locked account even for key logins: '*' means "no password" without "locked".
id "$TUSER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$TUSER"
usermod -p '*' "$TUSER"
pub="$(cat "$DIR/id_ed25519.pub")"
for u in "$TUSER" root; do
  home="$(getent passwd "$u" | cut -d: -f6)"
  group="$(id -gn "$u")"
  # StrictModes: authorized_keys must sit in a 0700 ~/.ssh owned by the user (never under /tmp).
  install -d -m 0700 -o "$u" -g "$group" "$home/.ssh"
  ak="$home/.ssh/authorized_keys"
  touch "$ak"
  grep -qxF "$pub" "$ak" || printf '%s\n' "$pub" >> "$ak"
  chown "$u:$group" "$ak"
  chmod 0600 "$ak"
done

# The keyboard-interactive user logs in with a password checked by PAM (pam_unix).
id "$KUSER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$KUSER"
if [ ! -s "$DIR/kbd_password" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$DIR/kbd_password")
fi
printf '%s:%s\n' "$KUSER" "$(cat "$DIR/kbd_password")" | chpasswd

# 4. Configurations. MaxStartups is raised because tests open many connections at once.
common="ListenAddress 127.0.0.1
HostKey $DIR/ssh_host_ed25519_key
UseDNS no
X11Forwarding no
AllowTcpForwarding yes
MaxStartups 100:30:200
MaxSessions 50
PrintMotd no
Subsystem sftp internal-sftp
LogLevel VERBOSE"

new_key_conf="Port $PORT
PidFile $DIR/sshd.pid
$common
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
AllowUsers $TUSER root"

new_kbd_conf="Port $KBD_PORT
PidFile $DIR/sshd_kbd.pid
$common
PubkeyAuthentication no
PasswordAuthentication no
KbdInteractiveAuthentication yes
AuthenticationMethods keyboard-interactive
PermitRootLogin no
UsePAM yes
AllowUsers $KUSER"

# start NAME PORT CONFIG_TEXT: (re)start one server unless it already runs with this config.
start() {
  local name="$1" port="$2" text="$3"
  local conf="$DIR/${name}_config" pidfile="$DIR/$name.pid" log="$DIR/$name.log"
  if [ -s "$pidfile" ] && alive "$(cat "$pidfile")" && [ -f "$conf" ] \
      && [ "$(cat "$conf")" = "$text" ]; then
    echo "sshd-up: $name already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
    return 0
  fi
  stop_pidfile "$pidfile"
  printf '%s\n' "$text" > "$conf"
  "$SSHD" -t -f "$conf" 2>"$log" || die "invalid $conf: $(cat "$log")"
  : > "$log"
  "$SSHD" -f "$conf" -E "$log" || die "$SSHD -f $conf failed"   # daemonizes, writes the pid file
  for _ in $(seq 100); do [ -s "$pidfile" ] && break; sleep 0.05; done
  [ -s "$pidfile" ] || die "$name wrote no pid file $pidfile"
  echo "sshd-up: started $name on 127.0.0.1:$port (pid $(cat "$pidfile"))"
}

start sshd "$PORT" "$new_key_conf"
start sshd_kbd "$KBD_PORT" "$new_kbd_conf"

# 5. known_hosts for clients: OpenSSH and paramiko both read this format.
hk="$(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub")"
{
  for p in "$PORT" "$KBD_PORT"; do
    printf '[127.0.0.1]:%s %s\n[localhost]:%s %s\n' "$p" "$hk" "$p" "$hk"
  done
} > "$DIR/known_hosts"

# 6. Wait until both servers accept connections (bounded), then prove a real key login works.
for p in "$PORT" "$KBD_PORT"; do
  ok=0
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then ok=1; break; fi
    sleep 0.05
  done
  [ "$ok" = 1 ] || die "nothing accepts connections on 127.0.0.1:$p"
done
ssh -o BatchMode=yes -o ConnectTimeout=10 -o UserKnownHostsFile="$DIR/known_hosts" \
    -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -i "$DIR/id_ed25519" -p "$PORT" \
    "$TUSER@127.0.0.1" true </dev/null || die "key login as $TUSER on 127.0.0.1:$PORT failed"
echo "sshd-up: ready; key $DIR/id_ed25519, known_hosts $DIR/known_hosts, $KUSER password in $DIR/kbd_password"
