"""eie.boards"""
