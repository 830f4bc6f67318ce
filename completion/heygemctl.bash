# bash completion for heygemctl(1). Installed as
# /usr/share/bash-completion/completions/heygemctl (bash-completion loads it on first use);
# `source completion/heygemctl.bash` works from the source tree too.
# tests/docs checks that it offers every command, option and choice of `heygemctl --help`.

_heygemctl_commands="submit status list watch wait cancel fetch logs models ping version reload workers"
_heygemctl_global_options="-h --help --version --socket --cluster --json -q --quiet --timeout"

# The options of one command (besides the global ones, which may follow it too).
_heygemctl_command_options() {
  case $1 in
    submit)
      echo "-a --audio -o --output -d --detach -f --force --blend --strict --loop --fps --box" \
           "--nosmooth --generator --detector --crf --lossless --preset --no-avatar-cache --no-silence-gate --enhance --no-enhance --inline" ;;
    list) echo "-a --all" ;;
    fetch) echo "-o --output -f --force" ;;
  esac
}

# Asks the daemon (quietly, nothing when it does not answer) for job ids or model names.
_heygemctl_query() {
  local -a socket_option=()
  [[ -n $_heygemctl_socket ]] && socket_option=(--socket "$_heygemctl_socket")
  case $1 in
    jobs)
      heygemctl "${socket_option[@]}" --json list --all 2>/dev/null |
        grep -o '"job_id":"[0-9a-f]*"' | cut -d'"' -f4 ;;
    models)
      heygemctl "${socket_option[@]}" --json models 2>/dev/null |
        grep -o '"name":"[^"]*"' | cut -d'"' -f4 ;;
  esac
}

_heygemctl_reply_words() {
  mapfile -t COMPREPLY < <(compgen -W "$1" -- "$2")
}

_heygemctl_reply_files() {
  compopt -o filenames 2>/dev/null
  mapfile -t COMPREPLY < <(compgen -f -- "$1")
}

# Completes the value of option $1 of command $3; returns 1 when that option takes no value.
_heygemctl_option_value() {
  local option=$1 cur=$2 command=$3
  [[ $option == -a && $command != submit ]] && return 1  # list -a is --all
  case $option in
    --socket | -a | --audio | -o | --output) _heygemctl_reply_files "$cur" ;;
    --blend) _heygemctl_reply_words "feather hard" "$cur" ;;
    --loop) _heygemctl_reply_words "pingpong forward" "$cur" ;;
    --preset)
      _heygemctl_reply_words "ultrafast superfast veryfast faster fast medium slow slower veryslow" "$cur" ;;
    --generator | --detector) _heygemctl_reply_words "$(_heygemctl_query models)" "$cur" ;;
    --fps | --box | --crf | --timeout | --cluster) COMPREPLY=() ;;  # numbers, URLs: nothing to offer
    *) return 1 ;;
  esac
  return 0
}

_heygemctl() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local command="" word i
  _heygemctl_socket=""
  COMPREPLY=()

  # The command is the first word that is neither an option nor an option's value.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    case $word in
      --socket) _heygemctl_socket=${COMP_WORDS[i + 1]}; ((i++)) ;;
      --timeout | --cluster) ((i++)) ;;
      --socket=*) _heygemctl_socket=${word#--socket=} ;;
      -a) [[ $command == submit ]] && ((i++)) ;;
      --audio | -o | --output | --blend | --loop | --fps | --box | --generator | --detector | --crf | --preset)
        [[ -n $command ]] && ((i++)) ;;
      -*) ;;
      *) [[ -z $command ]] && command=$word ;;
    esac
  done

  # --option=value arrives as three words: --option, =, value.
  if [[ $cur == = ]]; then
    _heygemctl_option_value "$prev" "" "$command" && return 0
  elif [[ $prev == = && $COMP_CWORD -ge 2 ]]; then
    _heygemctl_option_value "${COMP_WORDS[COMP_CWORD - 2]}" "$cur" "$command" && return 0
  fi
  _heygemctl_option_value "$prev" "$cur" "$command" && return 0

  if [[ -z $command ]]; then
    if [[ $cur == -* ]]; then
      _heygemctl_reply_words "$_heygemctl_global_options" "$cur"
    else
      _heygemctl_reply_words "$_heygemctl_commands" "$cur"
    fi
    return 0
  fi

  if [[ $cur == -* ]]; then
    _heygemctl_reply_words "$(_heygemctl_command_options "$command") $_heygemctl_global_options" "$cur"
    return 0
  fi
  case $command in
    submit) _heygemctl_reply_files "$cur" ;;
    status | watch | wait | cancel | fetch | logs) _heygemctl_reply_words "$(_heygemctl_query jobs)" "$cur" ;;
    models)
      if [[ $prev == load || $prev == unload ]]; then
        _heygemctl_reply_words "$(_heygemctl_query models)" "$cur"
      else
        _heygemctl_reply_words "load unload" "$cur"
      fi ;;
  esac
  return 0
}

complete -F _heygemctl heygemctl
